// The ops dashboard: live numbers over SSE (read with fetch, so the bearer token can
// ride along), charts of the last hour drawn on canvas, and the room's controls.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var samples = [];
  var latest = null;  // the last sample: what the controls' confirmations describe
  // Kept in this page's memory only: never in storage a script of the shop's, on the
  // same site, could read later. Reloading the dashboard asks for it again.
  var token = "";
  var room = $("d-room").getAttribute("data-room");
  var inRoom = "?room=" + encodeURIComponent(room);

  function auth() { return { Authorization: "Bearer " + token }; }

  // Why the breaker is as it is: what moved it last, and when (the audit log's words).
  function breakerWhy(change) {
    if (!change) return "never opened";
    var w = change.why, since = "since " + new Date(change.at_ms).toLocaleTimeString() + ": ";
    if (w.failures !== undefined)
      return since + w.failures + " of " + w.requests + " answers failed in " + w.window_seconds + " s";
    if (w.probe_failures !== undefined) return since + "a probe failed";
    if (w.cooldown_seconds !== undefined) return since + "probing after " + w.cooldown_seconds + " s";
    if (w.probes_ok !== undefined) return since + w.probes_ok + " probes answered";
    return since + JSON.stringify(w);
  }

  function show(s) {
    $("d-waiting").textContent = s.waiting;
    $("d-active").textContent = s.active + " / " + s.capacity;
    $("d-rate").textContent = (s.rate * 60).toFixed(1) + "/min";
    $("d-abandoned").textContent = s.abandoned;
    var c = s.config;
    // The breaker, and what ops set over it: capture forced on or off decides, not it.
    $("d-breaker").textContent = s.breaker + (c.capture === "auto" ? "" : " \u00b7 capture " + c.capture);
    $("d-breaker").className = "num" + (s.breaker === "closed" && c.capture !== "on" ? "" : " bad");
    $("d-breaker-why").textContent = breakerWhy(s.breaker_change);
    $("d-captures").textContent = s.captures + " (" + (s.interest || 0) + ")";
    $("d-stock").textContent = c.stock === null ? "not counted" : c.stock + " / " + s.sold;
    $("d-stock").className = "num" + (c.stock === 0 ? " bad" : "");
    $("d-origin").textContent = Math.round(s.latency_ms || 0) + " ms / " +
      ((s.errors || 0) * 100).toFixed(1) + "%";
    $("d-origin").className = "num" + (s.errors >= 0.1 ? " bad" : "");
    $("d-method").textContent = c.method + (c.max_waiting ? ", at most " + c.max_waiting : "");
    var steps = $("d-steps");
    steps.textContent = "";
    (s.steps || []).forEach(function (step) {  // text only: never markup from the API
      var li = document.createElement("li");
      li.textContent = utc(step.at_ms) + ": " + Object.keys(step.changes).map(function (k) {
        return k + "=" + (step.changes[k] === null ? "off" : step.changes[k]);
      }).join(" ");
      steps.appendChild(li);
    });
    if (!steps.firstChild) steps.textContent = "none";
    // What stops or bypasses the line first, in capitals, then the rest of the state.
    var alarms = [c.stock === 0 && "SOLD OUT", c.paused && "PAUSED",
                  c.mode === "closed" && "LINE CLOSED", c.mode === "open" && "QUEUE OFF",
                  c.capture === "on" && "CAPTURE FORCED ON"].filter(Boolean);
    $("d-state").textContent = alarms.concat(["mode " + c.mode +
      (c.capacity_mode === "adaptive" ? ", capacity adaptive " + c.capacity_min + "\u2013" +
       c.capacity_max : ", capacity fixed") +
      ", capture " + c.capture + (c.rate ? ", rate " + c.rate + "/min" : "") +
      (c.message ? ", message \u201c" + c.message + "\u201d" +
       (c.message_shown === false ? " (hidden: posted before it sold out)" : "") : ", no message")
    ]).join(" \u00b7 ");
    $("d-state").className = alarms.length ? "note bad" : "note";
    $("d-eta").textContent = c.stock === 0 ? "sold out" : c.paused ? "paused"
      : !s.waiting ? "nobody waiting" : s.eta_last === null ? "not known yet"
      : s.eta_last;  // in words, as the CLI says it (ops/admin_summary.wait_words)
    // The inputs show the live values until someone types in them.
    // Learning bounds never set (max 0) are offered around the capacity now.
    [["i-capacity", c.capacity], ["i-rate", c.rate], ["i-min", c.capacity_min || 1],
     ["i-max", c.capacity_max || Math.max(2 * c.capacity, c.capacity_min || 1)],
     ["i-message", c.message], ["i-stock", c.stock === null ? "" : c.stock],
     ["i-limit", c.max_waiting], ["i-method", c.method]].forEach(function (pair) {
      var input = $(pair[0]);
      if (!input.hasAttribute("data-edited")) input.value = pair[1];
    });
  }

  // What a change will do, in words, from the room as it stands: the confirmation.
  function effect(body) {
    var s = latest || { waiting: 0, active: 0, config: {} }, c = s.config;
    var waiting = s.waiting + " waiting";
    // Past what the origin has shown it serves well: said before it is tried.
    function untested(n) {
      return s.proven && n > s.proven ? "\n\nWARNING: the origin has served at most " + s.proven +
        " sessions at once without trouble; past that it may slow down or fail (the breaker " +
        "then sends shoppers to the details form). Learn capacity finds its limit instead." : "";
    }
    if ("capacity" in body) {
      var n = body.capacity;
      return "Capacity " + c.capacity + " \u2192 " + n + ": " + (n > s.active
        ? "lets in up to " + (n - s.active) + " more now (" + s.active + " in the order flow)."
        : "nobody new is let in until fewer than " + n + " sessions remain (" + s.active + " now).") +
        (c.capacity_mode === "adaptive" ? " It pins the capacity: the room stops learning it." : "") +
        untested(n);
    }
    if (body.capacity_mode === "adaptive") {
      return "Learn the capacity between " + body.capacity_min + " and " + body.capacity_max +
        " (now " + c.capacity + "): the room raises it while the origin answers as fast as " +
        "when unloaded, and lowers it when answers slow or fail, by letting fewer in, never " +
        "by ending sessions. Setting a capacity by hand pins it again." +
        (s.proven ? " The origin has served at most " + s.proven + " at once without trouble." : "");
    }
    if ("stock" in body) {
      if (body.stock === null) return "Stop counting stock: no chances are shown, and the room never sells out by stock.";
      if (body.stock === 0) return "Stock 0: SOLD OUT. Every waiter is told at once and keeps their place; new arrivals get the sold-out page.";
      return "Stock " + (c.stock === null ? "not counted" : c.stock) + " → " + body.stock +
        ": each waiter is told their chance of reaching it" + (c.stock === 0 ? "; the line moves again, places kept, and those who left details are told." : ".");
    }
    if ("max_waiting" in body) return body.max_waiting
      ? "Line limit " + body.max_waiting + ": arrivals past " + body.max_waiting + " waiting are told the line is full and get no place (" + waiting + " now)."
      : "No line limit: every arrival gets a place.";
    if ("method" in body) return {
      fifo: "Method fifo: first come, first served; positions are shown.",
      random: "Method random: at each admission a fair draw among those waiting; they are told they are in the draw, with no number.",
      passthrough: "Method passthrough: EVERYONE is let in at once, however many; sessions are still counted.",
      reject: "Method reject: no line. Who cannot walk straight in is told the room is full and gets no place; the " + waiting + " keep theirs."
    }[body.method] || JSON.stringify(body);
    if ("rate" in body) return body.rate ? "Admit at most " + body.rate + " a minute." : "Admit with no rate limit.";
    if ("paused" in body) return body.paused ? "Pause: nobody else is let in; the " + waiting + " keep their places."
                                             : "Resume letting people in.";
    if (body.mode === "open") return "Switch the queue OFF: the " + waiting + " and everyone who arrives go straight to the order flow, however many.";
    if (body.mode === "closed") return "Close the line: nobody new gets a place; the " + waiting + " are still served in order.";
    if (body.mode === "normal") return "Gate the order flow again, " + c.capacity + " at a time.";
    if (body.capture === "on") return "Force capture ON: everyone gets the details form instead of the order flow.";
    if (body.capture === "off") return "Force capture OFF: the order flow is used even while it is failing.";
    if (body.capture === "auto") return "Let the breaker decide when to capture.";
    if ("message" in body) return body.message ? "Show every visitor: \u201c" + body.message + "\u201d" : "Clear the message.";
    return JSON.stringify(body);
  }

  // own: each line to its own scale (the top label lists each one's top).
  function chart(id, series, colours, own) {
    var canvas = $(id), ctx = canvas.getContext("2d");
    var w = canvas.width = canvas.clientWidth * (window.devicePixelRatio || 1);
    var h = canvas.height = canvas.clientHeight * (window.devicePixelRatio || 1);
    ctx.clearRect(0, 0, w, h);
    if (samples.length < 2) return;
    var tops = series.map(function (f) {
      return samples.reduce(function (m, s) { return Math.max(m, f(s) || 0); }, 1e-9);
    });
    var max = Math.max.apply(null, tops.concat([1]));
    var t0 = samples[0].t, span = Math.max(1, samples[samples.length - 1].t - t0);
    // The limit (the first of several lines) goes on top, dashed: a line along it shows.
    series.slice().reverse().forEach(function (f, r) {
      var i = series.length - 1 - r;
      ctx.strokeStyle = colours[i]; ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
      ctx.setLineDash(series.length > 1 && i === 0 ? [6 * (window.devicePixelRatio || 1), 4 * (window.devicePixelRatio || 1)] : []);
      ctx.beginPath();
      samples.forEach(function (s, j) {
        var x = (s.t - t0) / span * (w - 4) + 2, y = h - 18 * (window.devicePixelRatio || 1) - (f(s) || 0) / (own ? tops[i] : max) * (h - 34 * (window.devicePixelRatio || 1));
        if (j) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.stroke();
    });
    ctx.setLineDash([]);
    // Axes: the scale's top and zero, and clock times along the bottom.
    var px = window.devicePixelRatio || 1;
    ctx.fillStyle = "#4a4a4a"; ctx.font = (11 * px) + "px sans-serif";
    ctx.fillText(own ? tops.map(function (t) { return String(Math.round(t * 10) / 10); }).join(" \u00b7 ")
                 : String(Math.round(max * 10) / 10), 4 * px, 12 * px);
    ctx.fillText("0", w - 12 * px, h - 16 * px);
    ctx.strokeStyle = "#d0d4da"; ctx.lineWidth = px; ctx.beginPath();
    ctx.moveTo(0, h - 14 * px); ctx.lineTo(w, h - 14 * px); ctx.stroke();
    [0, 0.5, 1].forEach(function (at) {
      var when = new Date(t0 + span * at).toTimeString().slice(0, span < 300000 ? 8 : 5);
      var x = Math.min(Math.max(at * w - ctx.measureText(when).width * at, 2), w);
      ctx.fillText(when, x, h - 2 * px);
    });
  }

  function draw() {
    chart("c-waiting", [function (s) { return s.waiting; }], ["#0b5cad"]);
    chart("c-active", [function (s) { return s.capacity; }, function (s) { return s.active; }],
          ["#b00020", "#1a7f37"]);
    chart("c-rate", [function (s) { return s.rate * 60; }], ["#8250df"]);
    chart("c-origin", [function (s) { return s.capacity; }, function (s) { return s.latency_ms; },
                       function (s) { return (s.errors || 0) * 100; }],
          ["#0b5cad", "#bc4c00", "#b00020"], true);
  }

  function add(s) {
    samples.push(s);
    var hourAgo = s.t - 3600 * 1000;
    while (samples.length && samples[0].t < hourAgo) samples.shift();
    latest = s; show(s); draw();
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

  // What the status line says: "live" only while figures arrive; else since when
  // they are frozen, and why if the server said.
  var heardAt = 0, watchdog = null;
  function status(text, frozen) {
    $("d-status").textContent = text;
    document.body.classList.toggle("d-frozen", !!frozen);
  }
  function clock(ms) { return new Date(ms).toLocaleTimeString(); }
  // A planned time as the CLI and the status page write it: UTC, seconds if any.
  function utc(ms) {
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ").replace(/:00$/, "") + "Z";
  }
  function heard() {
    heardAt = Date.now();
    clearTimeout(watchdog);
    watchdog = setTimeout(function () {  // two samples missed: say so, whatever the cause
      status("no figures since " + clock(heardAt) + ": figures frozen", true);
    }, 5000);
  }

  function stream() {
    listRooms();
    status("connecting…", heardAt > 0);
    fetch("/_wr/admin/events" + inRoom, { headers: auth() }).then(function (r) {
      if (r.status === 401) { status("wrong token"); return; }
      if (!r.ok) {
        status("the server answered " + r.status + (heardAt ? " (figures frozen since " +
               clock(heardAt) + ")" : "") + "; retrying…", true);
        setTimeout(stream, 3000); return;
      }
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
            } else if (e.indexOf("event: outage") === 0) {
              clearTimeout(watchdog);
              status("Redis unreachable since " + clock(JSON.parse(data).redis_unheard_since_ms) +
                     ": figures frozen", true);
            } else {
              add(JSON.parse(data)); heard(); status("live");
            }
          });
          return pump();
        });
      }
      return pump();
    }).catch(function () {
      status("reconnecting…" + (heardAt ? " (figures frozen since " + clock(heardAt) + ")" : ""),
             heardAt > 0);
      setTimeout(stream, 3000);
    });
  }

  function change(body, question) {
    if (!window.confirm(question)) return;
    $("d-result").textContent = "sending\u2026";
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
    var inputs = JSON.parse(b.getAttribute("data-inputs") || "{}"), missing = "";
    Object.keys(inputs).forEach(function (key) {
      var input = $(inputs[key]), raw = input.value, low = parseInt(input.min || "0", 10);
      if (typeof body[key] !== "number") { body[key] = raw; return; }
      body[key] = Number(raw);
      if (raw === "" || !Number.isInteger(body[key]) || body[key] < low) {
        missing = missing || input.getAttribute("aria-label") + ": a whole number, " + low + " or more";
      }
    });
    if (!missing && body.capacity_min > body.capacity_max) {
      missing = "The highest capacity to learn must be at least the lowest";
    }
    // Refused here, before any question: an empty number sent as null would mean "off"
    // to some keys, and the room would refuse the rest after the confirmation.
    if (missing) { $("d-result").textContent = missing; return; }
    change(body, effect(body) + "\n\nGo ahead?");
  });
  function edited(e) {  // an input says so on input, a select on change
    if (e.target.id && e.target.id.indexOf("i-") === 0) e.target.setAttribute("data-edited", "");
  }
  document.addEventListener("input", edited);
  document.addEventListener("change", edited);
  $("d-login").addEventListener("submit", function (e) {
    e.preventDefault();
    token = $("d-token").value;
    $("d-token").value = "";
    stream();
  });
  window.addEventListener("resize", draw);
  if (token) stream();
})();
