// Live updates for the queue page: Server-Sent Events, falling back to polling.
// Without JavaScript the page refreshes itself (<noscript> meta refresh).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var room = "?room=" + encodeURIComponent($("wr-card").getAttribute("data-room"));
  function minutes(s) {
    if (s === null) return "working it out\u2026";
    if (s < 60) return "less than a minute";
    var m = Math.round(s / 60);
    return "about " + m + (m === 1 ? " minute" : " minutes");
  }
  function show(st) {
    if (st.state === "admitted" || st.state === "open" || st.state === "capture") {
      location.replace(location.href);  // same URL, same origin: no redirect target to forge
      return;
    }
    $("wr-position").textContent = st.position === null ? "\u2013" : st.position;
    $("wr-eta").textContent = minutes(st.eta_seconds);
    $("wr-state").textContent = st.state === "paused"
      ? "Entry is paused for a moment. You keep your place."
      : st.state === "prequeue" ? "The sale starts soon: places are drawn at random at the start." : "";
    var msg = $("wr-message");
    msg.textContent = st.message || "";
    msg.hidden = !st.message;
  }
  function poll() {
    fetch("/_wr/status" + room, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (st) { show(st); setTimeout(poll, st.poll_after_seconds * 1000); })
      .catch(function () { setTimeout(poll, 5000); });
  }
  if (window.EventSource) {
    var es = new EventSource("/_wr/events" + room);
    es.onmessage = function (e) { show(JSON.parse(e.data)); };
    es.onerror = function () { if (es.readyState === 2) poll(); };
  } else {
    poll();
  }
})();
