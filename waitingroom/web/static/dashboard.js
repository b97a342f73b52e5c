// The ops dashboard: live numbers over SSE (read with fetch, so the bearer token can
// ride along), charts of the last hour drawn on canvas, and the room's controls.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var samples = [];
  var token = sessionStorage.getItem("wr-admin-token") || "";
  var room = $("d-room").getAttribute("data-room");
  var inRoom = "?room=" + encodeURIComponent(room);

  function auth() { return { Authorization: "Bearer " + token }; }

  function show(s) {
    $("d-waiting").textContent = s.waiting;
    $("d-active").textContent = s.active + " / " + s.capacity;
    $("d-rate").textContent = (s.rate * 60).toFixed(1) + "/min";
    $("d-abandoned").textContent = s.abandoned;
    $("d-breaker").textContent = s.breaker;
    $("d-breaker").className = "num" + (s.breaker === "closed" ? "" : " bad");
    $("d-captures").textContent = s.captures;
    var c = s.config;
    $("d-state").textContent = (c.paused ? "paused, " : "") + "mode " + c.mode +
      ", capture " + c.capture + (c.rate ? ", rate " + c.rate + "/min" : "");
    var eta = s.rate > 0 ? Math.round(s.waiting / s.rate) + " s" : "unknown";
    $("d-eta").textContent = eta;
  }

  function chart(id, series, colours) {
    var canvas = $(id), ctx = canvas.getContext("2d");
    var w = canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1);
    var h = canvas.height = canvas.clientHeight * (window.devicePixelRatio || 1);
    ctx.clearRect(0, 0, w, h);
    if (samples.length < 2) return;
    var max = 1;
    series.forEach(function (f) { samples.forEach(function (s) { max = Math.max(max, f(s)); }); });
    var t0 = samples[0].t, span = Math.max(1, samples[samples.length - 1].t - t0);
    series.forEach(function (f, i) {
      ctx.strokeStyle = colours[i]; ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
      ctx.beginPath();
      samples.forEach(function (s, j) {
        var x = (s.t - t0) / span * (w - 4) + 2, y = h - 4 - f(s) / max * (h - 8);
        if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.stroke();
    });
    ctx.fillStyle = "#4a4a4a"; ctx.font = (12 * (window.devicePixelRatio || 1)) + "px sans-serif";
    ctx.fillText("max " + Math.round(max * 10) / 10, 6, 14 * (window.devicePixelRatio || 1));
  }

  function draw() {
    chart("c-waiting", [function (s) { return s.waiting; }], ["#0b5cad"]);
    chart("c-active", [function (s) { return s.capacity; }, function (s) { return s.active; }],
          ["#b00020", "#1a7f37"]);
    chart("c-rate", [function (s) { return s.rate * 60; }], ["#8250df"]);
  }

  function add(s) {
    samples.push(s);
    var hourAgo = s.t - 3600 * 1000;
    while (samples.length && samples[0].t < hourAgo) samples.shift();
    show(s); draw();
  }

  // Links to every room's dashboard (rooms come and go while the launch runs).
  function listRooms() {
    fetch("/_wr/admin/rooms", { headers: auth() }).then(function (r) {
      return r.ok ? r.json() : { rooms: [] };
    }).then(function (j) {
      var nav = $("d-rooms");
      nav.textContent = j.rooms.length > 1 ? "Rooms: " : "";
      j.rooms.forEach(function (r) {
        if (j.rooms.length < 2) return;
        var a = document.createElement("a");
        a.href = "/_wr/admin/dashboard?room=" + encodeURIComponent(r.room);
        a.textContent = r.room + " (" + r.counts.waiting + " waiting)";
        if (r.room === room) a.setAttribute("aria-current", "page");
        nav.appendChild(a); nav.appendChild(document.createTextNode(" "));
      });
    }).catch(function () {});
  }

  function stream() {
    listRooms();
    $("d-status").textContent = "connecting…";
    fetch("/_wr/admin/events" + inRoom, { headers: auth() }).then(function (r) {
      if (r.status === 401) { $("d-status").textContent = "wrong token"; return; }
      $("d-status").textContent = "live";
      var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
      function pump() {
        return reader.read().then(function (part) {
          if (part.done) { setTimeout(stream, 1000); return; }
          buffer += decoder.decode(part.value, { stream: true });
          var events = buffer.split("\n\n"); buffer = events.pop();
          events.forEach(function (e) {
            var data = e.split("\n").filter(function (l) { return l.indexOf("data: ") === 0; })
              .map(function (l) { return l.slice(6); }).join("\n");
            if (!data) return;
            if (e.indexOf("event: history") === 0) {
              samples = JSON.parse(data); draw();
            } else {
              add(JSON.parse(data));
            }
          });
          return pump();
        });
      }
      return pump();
    }).catch(function () { $("d-status").textContent = "reconnecting…"; setTimeout(stream, 3000); });
  }

  function change(body, question) {
    if (!window.confirm(question)) return;
    fetch("/_wr/admin/room" + inRoom, { method: "POST", body: JSON.stringify(body),
                               headers: Object.assign({ "Content-Type": "application/json" }, auth()) })
      .then(function (r) { return r.json().then(function (j) {
        $("d-result").textContent = r.ok ? "done" : (j.error || "failed");
      }); });
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-change]");
    if (!b) return;
    var body = JSON.parse(b.getAttribute("data-change"));
    if (b.hasAttribute("data-input")) {
      var raw = $(b.getAttribute("data-input")).value, key = Object.keys(body)[0];
      body[key] = typeof body[key] === "number" ? parseInt(raw, 10) : raw;
    }
    change(body, b.getAttribute("data-confirm") + " " + JSON.stringify(body) + "?");
  });
  $("d-login").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("d-token").value; sessionStorage.setItem("wr-admin-token", token);
    stream();
  });
  window.addEventListener("resize", draw);
  if (token) stream();
})();
