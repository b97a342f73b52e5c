// Live updates for the queue page: Server-Sent Events, falling back to polling.
// Without JavaScript the page refreshes itself (<noscript> meta refresh).
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var card = $("wr-card");
  var roomName = card.getAttribute("data-room");
  var room = "?room=" + encodeURIComponent(roomName);
  var firstKey = "wr-first-" + roomName;  // the position this visitor first saw
  var updatedAt = 0, leaving = false;
  var shown = $("wr-chance").getAttribute("data-level");  // told again, so it holds steady
  function words(key) { return card.getAttribute("data-" + key); }  // in the page's language
  // "Tell me when it's my turn": not on every page (ops may turn it off).
  function notifyForm() { return document.querySelector("form[action*='/_wr/notify']"); }
  function minutes(s, exact) {  // exact: a known time (the sale's start), no range
    if (s === null) return words("eta-unknown");
    if (s < 60) return words("eta-soon");
    var m = Math.round(s / 60);
    if (m <= 1) return words("eta-minute");
    if (exact) return words("eta-exact").replace("{n}", m);
    var spread = Math.max(1, Math.round(m * 0.2));  // as pages.eta_range
    return words("eta-minutes").replace("{low}", Math.max(1, m - spread))
      .replace("{high}", m + spread);
  }
  // Progress: the share of those ahead at the first look who have gone in since.
  function progress(position) {
    var first = parseInt(sessionStorage.getItem(firstKey) || "0", 10);
    if (!first || position > first) {
      first = position; sessionStorage.setItem(firstKey, String(position));
    }
    var share = first > 1 ? Math.round((first - position) / (first - 1) * 100) : 100;
    var bar = $("wr-progress");
    bar.hidden = false;
    bar.setAttribute("aria-valuenow", String(share));
    bar.firstElementChild.style.width = share + "%";
  }
  function go() { location.replace(location.href); }  // same URL: no redirect target to forge
  // The turn has come: say so (the tab's title too, for a tab in the background), then
  // go on. A hidden tab waits to be looked at, asking meanwhile (which holds the slot)
  // for at most half a minute.
  function yourTurn() {
    leaving = true;
    sessionStorage.removeItem(firstKey);
    document.title = "\u2705 " + words("your-turn");
    var turn = $("wr-turn");
    turn.textContent = words("your-turn") + " " + words("your-turn-session");
    turn.hidden = false;
    $("wr-place").hidden = true;  // a place and a wait no longer say anything true
    document.querySelector("h1").textContent = words("your-turn");
    if (notifyForm()) notifyForm().hidden = true;  // nothing left to be told of
    if (navigator.vibrate) navigator.vibrate([200, 100, 200]);
    var giveUp = Date.now() + 30000;
    function ask() {
      return fetch("/_wr/status" + room, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .catch(function () {});
    }
    // Asked once more just before going (an event stream cannot set cookies): the
    // answer marks the visitor as let in for every process, and holds the slot again.
    function whenSeen() {
      if (!document.hidden || Date.now() > giveUp) {
        setTimeout(function () { ask().then(go); }, 1500);
        return;
      }
      ask().then(function () { setTimeout(whenSeen, 2000); });
    }
    whenSeen();
  }
  function show(st) {
    if (leaving) return;
    if (st.state === "admitted") { yourTurn(); return; }
    if (st.state === "open" || st.state === "capture" || st.state === "moved") { go(); return; }
    updatedAt = Date.now();
    $("wr-updated").textContent = words("updated").replace("{n}", "0");
    $("wr-position").textContent = st.state === "draw" ? words("in-draw")
      : st.position === null ? "\u2013" : st.position;
    if (st.position) progress(st.position);
    $("wr-position").classList.toggle("words", st.state === "draw");
    // Nothing left to wait for, or no order to wait in.
    $("wr-wait").hidden = st.state === "sold_out" || st.state === "draw";
    if (notifyForm()) notifyForm().hidden = st.state === "sold_out";  // no turn to tell of
    $("wr-eta").textContent = minutes(st.eta_seconds, st.state === "prequeue");
    $("wr-state").textContent = st.state === "paused" || st.state === "prequeue"
      || st.state === "draw" ? words(st.state) : st.state === "sold_out" ? words("sold-out") : "";
    var chance = $("wr-chance");
    shown = st.chance ? st.chance.level : "";
    chance.textContent = shown ? words("chance-" + shown) : "";
    chance.setAttribute("data-level", shown);
    $("wr-interest").hidden = shown !== "unlikely" && st.state !== "sold_out";
    var msg = $("wr-message");
    msg.textContent = st.message || "";
    msg.hidden = !st.message;
  }
  // While answers fail (the room's Redis away, the network gone), the page says it is
  // reconnecting rather than only how old its figures are.
  var failing = false;
  function age() {
    if (updatedAt && !leaving) {
      var n = Math.round((Date.now() - updatedAt) / 1000);
      $("wr-updated").textContent = words(failing ? "reconnecting" : "updated")
        .replace("{n}", String(n));
    }
  }
  setInterval(age, 1000);
  function failed() { failing = true; age(); }
  // An answer that is not a status (the room's Redis away: 503, or a busy process:
  // 429) is waited out as it says (Retry-After), never asked again at
  // once; once answers come again, the event stream is tried again.
  function poll() {
    fetch("/_wr/status" + room + (shown ? "&chance=" + shown : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error(r.headers.get("Retry-After") || "5");
        return r.json();
      })
      .then(function (st) {
        var recovered = failing;
        failing = false; show(st);
        if (leaving) return;
        if (recovered && window.EventSource) listen(); else setTimeout(poll, st.poll_after_seconds * 1000);
      })
      .catch(function (e) { failed(); setTimeout(poll, retryAfter(e) * 1000); });
  }
  function retryAfter(e) {
    var s = parseInt(e && e.message, 10);
    return s > 0 && s < 3600 ? s : 5;
  }
  // The page closed (the browser says no navigation of its own went with it): the turn,
  // if it comes before this visitor is back, holds no slot for them meanwhile. A reload
  // asks again at once, which undoes it; the place is kept for the grace either way.
  if (window.navigation && navigator.sendBeacon) {
    var navigating = false;
    navigation.addEventListener("navigate", function (event) {
      if (!event.destination.sameDocument) navigating = true;
    });
    addEventListener("pagehide", function () {
      if (!navigating) navigator.sendBeacon("/_wr/leave" + room + "&closed=1");
    });
    addEventListener("pageshow", function () { navigating = false; });
  }
  // The event stream, falling back to polling when it gives up (it retries by itself
  // first: meanwhile the page says it is reconnecting).
  function listen() {
    var es = new EventSource("/_wr/events" + room);
    es.onmessage = function (e) { failing = false; show(JSON.parse(e.data)); };
    es.addEventListener("outage", failed);  // the room's Redis away: the stream stays
    es.onerror = function () {
      if (leaving) return;
      if (es.readyState === 2) { failed(); poll(); return; }
      // Reconnecting by itself (a stream the server ended does so at once): said only
      // if it is not back within two seconds.
      setTimeout(function () { if (es.readyState !== 1 && !leaving) failed(); }, 2000);
    };
  }
  if (window.EventSource) listen(); else poll();
})();
