// A first visit: the room gave this browser its cookie with this page; asking again
// with it takes the place in line (the room gives none to a client that never sends
// its cookie back). Reloads at once; says so when the cookie does not come back.
(function () {
  "use strict";
  var key = "wr-arrive", tries = 0, now = Date.now();
  try {  // storage is refused too where cookies are blocked
    var last = JSON.parse(sessionStorage.getItem(key) || "null");
    tries = last && now - last.at < 30000 ? last.tries : 0;
    sessionStorage.setItem(key, JSON.stringify({ at: now, tries: tries + 1 }));
  } catch (e) {
    tries = 3;
  }
  if (navigator.cookieEnabled && tries < 2) {
    location.replace(location.href);
    return;
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("wr-arriving").hidden = true;
    document.getElementById("wr-no-cookies").hidden = false;
  });
})();
