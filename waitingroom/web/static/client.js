// The waiting room's client for single-page shops and web views, with no
// dependencies. A classic script (it sets window.WaitingRoom) and, imported through
// /_wr/static/client.mjs, an ES module. See docs/http-api.md#single-page-shops.
//
//   WaitingRoom.fetch(url, init, { onUpdate: function (status) { ... } })
//     is fetch(), except that a call the room holds back waits in line: onUpdate gets
//     each status ({state, position, eta_seconds, ...}) and the call is sent again
//     once the caller may pass. It resolves with the shop's answer, or with the room's
//     own when the caller cannot pass at all (its X-WaitingRoom-State says why:
//     "capture" when orders are taken as details instead, "moved" when the place went
//     to another device). Give an AbortSignal as options.signal to stop waiting.
//   WaitingRoom.wait(room, options) waits in line for a room by name, the same way,
//     and resolves with the last status.
(function (global) {
  "use strict";
  var STATE = "x-waitingroom-state";
  var PASS = { admitted: true, open: true };
  var STOP = { capture: true, moved: true };

  function pause(seconds, signal) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(resolve, Math.max(1, seconds) * 1000);
      if (signal) signal.addEventListener("abort", function () {
        clearTimeout(timer); reject(signal.reason || new Error("aborted"));
      }, { once: true });
    });
  }

  function status(room, signal) {
    return global.fetch("/_wr/status?room=" + encodeURIComponent(room), {
      credentials: "same-origin", headers: { Accept: "application/json" }, signal: signal
    }).then(function (r) {
      if (!r.ok) return { room: room, state: "busy", poll_after_seconds: 5 };
      return r.json();
    }, function (error) {
      if (signal && signal.aborted) throw error;
      return { room: room, state: "offline", poll_after_seconds: 5 };  // try again
    });
  }

  function wait(room, options, first) {
    options = options || {};
    var told = options.onUpdate || function () {};
    function round(s) {
      told(s);
      if (PASS[s.state] || STOP[s.state]) return s;
      return pause(s.poll_after_seconds || 5, options.signal).then(function () {
        return status(room, options.signal);
      }).then(round);
    }
    return (first ? Promise.resolve(first) : status(room, options.signal)).then(round);
  }

  function through(input, init, options) {
    options = options || {};
    var call = Object.assign({ credentials: "same-origin" }, init || {},
                             options.signal ? { signal: options.signal } : {});
    return global.fetch(input, call).then(function (response) {
      if (!response.headers.get(STATE)) return response;  // the shop's own answer
      return response.clone().json().then(function (s) {
        return wait(s.room, options, s).then(function (last) {
          return PASS[last.state] ? through(input, init, options) : response;
        });
      });
    });
  }

  global.WaitingRoom = { fetch: through, wait: wait, status: status };
})(typeof globalThis !== "undefined" ? globalThis : window);
