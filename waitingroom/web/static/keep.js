// The "continue on another device" page: while it is open, ask for the status as the
// queue page would, so the place is kept until the other device takes it.
(function () {
  "use strict";
  var card = document.getElementById("wr-keep");
  var room = "?room=" + encodeURIComponent(card.getAttribute("data-room"));
  function ask() {
    fetch("/_wr/status" + room, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("not a status");  // waited out below, never at once
        return r.json();
      })
      .then(function (st) {
        if (st.state === "moved") {  // the other device has it now
          document.getElementById("wr-keep-state").textContent = card.getAttribute("data-moved");
          return;
        }
        if (st.state === "admitted" || st.state === "open") {  // our turn came first
          location.assign(card.getAttribute("data-to"));  // a same-site path, checked by the room
          return;
        }
        setTimeout(ask, st.poll_after_seconds * 1000);
      })
      .catch(function () { setTimeout(ask, 5000); });
  }
  ask();
})();
