// Ends a shopper's waiting-room session soon after their last page goes away (the tab
// closed, the shopper left the site), so the next in line gets the slot in seconds
// instead of after the idle timeout. The room adds it to the shop's pages as admitted
// shoppers load them (leave_beacon); a shop may include it itself, where it wants it:
//   <script src="/_wr/static/leave.js" data-room="default" defer></script>
// When a page goes (pagehide) it says so (POST /_wr/leave): the session ends 10 s later
// unless the shopper goes on, and the shopper gets the first free slot if back within
// the grace. The next page says it is here (POST /_wr/here) as soon as it runs (and
// again if shown from the back-forward cache), which keeps the session. Where the
// browser tells where a page is going (the Navigation API), a page that goes to
// another site (a payment provider's 3-D Secure check, a sign-in elsewhere) says
// nothing: the shopper is coming back.
(function () {
  "use strict";
  if (window.waitingRoomLeave) return;  // added by the room and by the shop: once is enough
  window.waitingRoomLeave = true;
  var script = document.currentScript;
  var room = script && script.getAttribute("data-room");
  var query = room ? "?room=" + encodeURIComponent(room) : "";
  function say(what) {
    if (navigator.sendBeacon) navigator.sendBeacon("/_wr/" + what + query);
  }
  // Half a second on, so it arrives after the page before's leave.
  function here() { setTimeout(function () { say("here"); }, 500); }
  var elsewhere = false;  // the page is going to another site, and will come back
  if (window.navigation) {
    navigation.addEventListener("navigate", function (event) {
      elsewhere = new URL(event.destination.url).origin !== location.origin;
    });
  }
  addEventListener("pagehide", function () { if (!elsewhere) say("leave"); });
  addEventListener("pageshow", function (event) { if (event.persisted) here(); });
  here();
})();
