"""The ops dashboard's page: a shell whose numbers arrive over the admin API's
token-protected event stream."""

from __future__ import annotations

from html import escape

from waitingroom.engine.room_change import METHODS
from waitingroom.web.renderer import in_room

HEAD = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/_wr/static/queue.css">
{extra}</head><body><main>
"""


def _button(label: str, change: str, inputs: str = "", *, danger: bool = False) -> str:
    """A control: the change it asks for (confirmed in words by the page's script);
    ``inputs`` names, as JSON, the input each of the change's keys is read from;
    ``danger`` for those that let many through or stop the line at once."""
    data_inputs = f" data-inputs='{inputs}'" if inputs else ""
    kind = ' class="danger"' if danger else ""
    return (f"<button type=\"button\"{kind} data-change='{change}'{data_inputs}>"
            f"{label}</button>")


def _number(input_id: str, label: str, low: int = 0) -> str:
    """A whole-number input, labelled, showing the live value until someone types in it."""
    return (f'<label class="field">{label} <input id="{input_id}" type="number" '
            f'min="{low}" aria-label="{label}" placeholder="live value"></label>')


def dashboard_page(room: str) -> bytes:
    """The ops dashboard shell; its numbers arrive over the token-protected stream."""
    head = HEAD.format(lang="en",
        title=f"Dashboard \u2013 {escape(room)}",
        extra=('<link rel="stylesheet" href="/_wr/static/dashboard.css">\n'
               '<link rel="icon" href="data:,">\n'  # no /favicon.ico asked of the shop
               '<script src="/_wr/static/dashboard.js" defer></script>\n'))
    tiles, charts, controls = _tiles(), _charts(), _controls()
    return (head + f"""<h1 id="d-room" data-room="{escape(room)}">Room {escape(room)}</h1>
<nav class="note" id="d-rooms" aria-label="Rooms"></nav>
<form id="d-login" class="card"><label for="d-token">Admin token</label>
<input id="d-token" type="password" autocomplete="current-password">
<button>Connect</button> <span id="d-status" role="status"></span></form>
<p id="d-state" class="note"></p>
<div class="grid">{tiles}</div>
<div class="charts">{charts}</div>
<div class="card controls"><p class="label">Controls (each says what it will do, then asks)
</p>{controls}
<p id="d-result" role="status"></p></div>
<p class="note"><a href="{escape(in_room("/_wr/status-page", room))}">Public status page</a>
</p>
</main></body></html>
""").encode()


def _tiles() -> str:
    """The numbers, one card each (filled in by dashboard.js)."""
    notes = {"breaker": '<p class="note" id="d-breaker-why"></p>'}  # since when, and why
    tiles = "".join(
        f'<div class="card"><p class="label">{label}</p>'
        f'<p class="num" id="d-{key}">\u2013</p>{notes.get(key, "")}</div>'
        for key, label in (("waiting", "Waiting"), ("active", "Active / capacity"),
                           ("rate", "Admission rate"), ("eta", "ETA for the last in line"),
                           ("abandoned", "Abandoned"), ("breaker", "Breaker"),
                           ("captures", "Captures (interest)"), ("stock", "Stock left / sold"),
                           ("method", "Queueing method"),
                           ("origin", "Origin: mean answer / errors")))
    tiles += ('<div class="card"><p class="label">Planned changes (next 5)</p>'
              '<ol id="d-steps" class="note"></ol></div>')
    return tiles


def _charts() -> str:
    """The last hour, drawn by dashboard.js."""
    return "".join(
        f'<div class="card"><p class="label">{label}</p><canvas id="c-{key}"></canvas></div>'
        for key, label in (("waiting", "Waiting, last hour"),
                           ("active", "Active sessions (green) and capacity (red, dashed)"),
                           ("rate", "Admissions per minute"),
                           ("origin", "Capacity (dashed), origin answer time (orange) and "
                                      "errors (red), each to its own scale")))


def _controls() -> str:
    """Every live change ops make from here, each a button saying what it will do."""
    return " ".join((
        _number("i-capacity", "Capacity", 1),
        _button("Set capacity", '{"capacity": 0}', '{"capacity": "i-capacity"}'),
        _number("i-rate", "Rate per minute"),
        _button("Set rate/min", '{"rate": 0}', '{"rate": "i-rate"}'),
        _button("Pause", '{"paused": true}'), _button("Resume", '{"paused": false}'),
        _button("Gate normally", '{"mode": "normal"}'),
        _button("Capture auto", '{"capture": "auto"}'),
        _button("Capture off", '{"capture": "off"}'),
        '<label class="field">Message <input id="i-message" type="text" maxlength="500"'
        ' aria-label="Message" placeholder="Operator message"></label>',
        _button("Set message", '{"message": ""}', '{"message": "i-message"}'),
        "<br>", _number("i-min", "Lowest capacity to learn", 1),
        _number("i-max", "Highest capacity to learn", 1),
        _button("Learn capacity", '{"capacity_mode": "adaptive", "capacity_min": 0, '
                '"capacity_max": 0}', '{"capacity_min": "i-min", "capacity_max": "i-max"}'),
        _number("i-stock", "Stock left"),
        _button("Set stock", '{"stock": 0}', '{"stock": "i-stock"}'),
        _button("Stop counting stock", '{"stock": null}'),
        _number("i-limit", "Longest line (0: no limit)"),
        _button("Set line limit", '{"max_waiting": 0}', '{"max_waiting": "i-limit"}'),
        '<label class="field">Queueing method <select id="i-method"'
        ' aria-label="Queueing method">'
        + "".join(f'<option value="{m}">{m}</option>'
                  for m in METHODS)
        + "</select></label>",
        _button("Set method", '{"method": ""}', '{"method": "i-method"}'),
        '<span class="danger-zone">',
        _button("Open: no queue", '{"mode": "open"}', danger=True),
        _button("Close the line", '{"mode": "closed"}', danger=True),
        _button("Capture on", '{"capture": "on"}', danger=True), "</span>",
    ))
