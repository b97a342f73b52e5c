// Proof of work before a place in line: find a nonce whose SHA-256 with the challenge
// starts with the required zero bits, post it, and reload: the page is then the queue.
(function () {
  "use strict";
  var box = document.getElementById("wr-pow");
  var challenge = box.getAttribute("data-challenge");
  var bits = parseInt(box.getAttribute("data-difficulty"), 10);
  var room = box.getAttribute("data-room");
  var encoder = new TextEncoder();
  function zeroBits(buffer) {
    var bytes = new Uint8Array(buffer), n = 0;
    for (var i = 0; i < bytes.length; i++) {
      if (bytes[i] === 0) { n += 8; continue; }
      for (var b = 7; b >= 0 && !(bytes[i] >> b & 1); b--) n++;
      break;
    }
    return n;
  }
  function batch(start) {
    var tries = [];
    for (var i = start; i < start + 256; i++) {
      tries.push(crypto.subtle.digest("SHA-256", encoder.encode(challenge + ":" + i)));
    }
    return Promise.all(tries).then(function (digests) {
      for (var j = 0; j < digests.length; j++) {
        if (zeroBits(digests[j]) >= bits) return start + j;
      }
      return batch(start + 256);
    });
  }
  batch(0).then(function (nonce) {
    var body = new URLSearchParams({ challenge: challenge, nonce: String(nonce) });
    return fetch("/_wr/pow?room=" + encodeURIComponent(room),
                 { method: "POST", body: body, credentials: "same-origin" });
  }).then(function (r) {
    if (r.ok) location.replace(location.href);
    else document.getElementById("wr-pow-state").textContent = box.getAttribute("data-reload");
  });
})();
