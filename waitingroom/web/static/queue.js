// Live updates for the queue page: Server-Sent Events, falling back to polling.
// Without JavaScript the page refreshes itself (<noscript> meta refresh).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var card = $("wr-card");
  var room = "?room=" + encodeURIComponent(card.getAttribute("data-room"));
  function words(key) { return card.getAttribute("data-" + key); }  // in the page's language
  function minutes(s) {
    if (s === null) return words("eta-unknown");
    if (s < 60) return words("eta-soon");
    var m = Math.round(s / 60);
    if (m <= 1) return words("eta-minute");
    var spread = Math.max(1, Math.round(m * 0.2));  // as pages.eta_range
    return words("eta-minutes").replace("{low}", Math.max(1, m - spread))
      .replace("{high}", m + spread);
  }
  function show(st) {
    if (st.state === "admitted" || st.state === "open" || st.state === "capture" ||
        st.state === "moved") {
      location.replace(location.href);  // same URL, same origin: no redirect target to forge
      return;
    }
    $("wr-position").textContent = st.position === null ? "\u2013" : st.position;
    $("wr-eta").textContent = minutes(st.eta_seconds);
    $("wr-state").textContent = st.state === "paused" || st.state === "prequeue"
      ? words(st.state) : "";
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
