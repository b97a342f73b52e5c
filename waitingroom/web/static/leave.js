// Ends a shopper's waiting-room session soon after their last page goes away (the tab
// closed, the shopper left the site), so the next in line gets the slot in seconds
// instead of after the idle timeout. Include it on the gated pages of the order flow:
//   <script src="/_wr/static/leave.js" data-room="default" defer></script>
// When a page goes (pagehide) it says so (POST /_wr/leave): the session ends 10 s later
// unless the shopper goes on. The next page says it is here (POST /_wr/here) as soon
// as it runs (and again if shown from the back-forward cache), which keeps the session. Leave it off a page that sends the shopper
// to another site and back (a payment provider's 3-D Secure check, a sign-in with
// another provider): the session would end while they are away.
(function () {
  "use strict";
  var script = document.currentScript;
  var room = script && script.getAttribute("data-room");
  var query = room ? "?room=" + encodeURIComponent(room) : "";
  function say(what) {
    if (navigator.sendBeacon) navigator.sendBeacon("/_wr/" + what + query);
  }
  // Half a second on, so it arrives after the page before's leave.
  function here() { setTimeout(function () { say("here"); }, 500); }
  addEventListener("pagehide", function () { say("leave"); });
  addEventListener("pageshow", function (event) { if (event.persisted) here(); });
  here();
})();
