// Ends a shopper's waiting-room session soon after their last page goes away (the tab
// closed, the shopper left the site), so the next in line gets the slot in seconds
// instead of after the idle timeout. The room adds it to the shop's pages as admitted
// shoppers load them (leave_beacon); a shop may include it itself, where it wants it:
//   <script src="/_wr/static/leave.js" data-room="default" defer></script>
// When a page goes (pagehide) it says so (POST /_wr/leave): the session ends 10 s later
// (2 s when the browser says the tab was closed) unless the shopper goes on, and the
// shopper gets the first free slot if back within the grace. The next page says it is here (POST /_wr/here) as soon as it runs (and
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
  function say(what, closed) {
    var query = new URLSearchParams();
    if (room) query.set("room", room);
    if (closed) query.set("closed", "1");
    if (navigator.sendBeacon) navigator.sendBeacon("/_wr/" + what + "?" + query);
  }
  // Half a second on, so it arrives after the page before's leave.
  function here() { setTimeout(function () { say("here"); }, 500); }
  // Where the browser says what the page does (the Navigation API): a page that goes to
  // another site is coming back, and one that goes with no navigation of its own (the
  // tab closed) is not going on to another page of the shop's: it ends in 2 s, not 10.
  var going;
  function showing() { going = window.navigation ? "closed" : ""; }
  if (window.navigation) {
    navigation.addEventListener("navigate", function (event) {
      if (event.destination.sameDocument) return;
      going = new URL(event.destination.url).origin === location.origin ? "" : "elsewhere";
    });
  }
  addEventListener("pagehide", function () {
    if (going !== "elsewhere") say("leave", going === "closed");
  });
  addEventListener("pageshow", function (event) {
    showing();
    if (event.persisted) here();
  });
  showing();
  here();
})();
