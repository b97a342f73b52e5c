"""The ops dashboard's page: a shell whose numbers arrive over the admin API's
token-protected event stream."""

from __future__ import annotations

from html import escape

from waitingroom.web.pages import HEAD, in_room


def _button(label: str, change: str, question: str, input_id: str = "") -> str:
    data_input = f' data-input="{input_id}"' if input_id else ""
    return (f"<button type=\"button\" data-change='{change}' data-confirm=\"{question}\""
            f"{data_input}>{label}</button>")


def dashboard_page(room: str) -> bytes:
    """The ops dashboard shell; its numbers arrive over the token-protected stream."""
    head = HEAD.format(lang="en",
        title=f"Dashboard \u2013 {escape(room)}",
        extra=('<link rel="stylesheet" href="/_wr/static/dashboard.css">\n'
               '<script src="/_wr/static/dashboard.js" defer></script>\n'))
    tiles = "".join(
        f'<div class="card"><p class="label">{label}</p>'
        f'<p class="num" id="d-{key}">\u2013</p></div>'
        for key, label in (("waiting", "Waiting"), ("active", "Active / capacity"),
                           ("rate", "Admission rate"), ("eta", "ETA for the last in line"),
                           ("abandoned", "Abandoned"), ("breaker", "Breaker"),
                           ("captures", "Captures")))
    charts = "".join(
        f'<div class="card"><p class="label">{label}</p><canvas id="c-{key}"></canvas></div>'
        for key, label in (("waiting", "Waiting, last hour"),
                           ("active", "Active sessions (green) vs capacity (red)"),
                           ("rate", "Admissions per minute")))
    sure = "Change the room:"
    controls = " ".join((
        '<input id="i-capacity" type="number" min="1" value="100" aria-label="Capacity">',
        _button("Set capacity", '{"capacity": 0}', sure, "i-capacity"),
        '<input id="i-rate" type="number" min="0" value="0" aria-label="Rate per minute">',
        _button("Set rate/min", '{"rate": 0}', sure, "i-rate"),
        _button("Pause", '{"paused": true}', sure), _button("Resume", '{"paused": false}', sure),
        _button("Open (no queue)", '{"mode": "open"}', sure),
        _button("Gate normally", '{"mode": "normal"}', sure),
        _button("Close the line", '{"mode": "closed"}', sure),
        _button("Capture on", '{"capture": "on"}', sure),
        _button("Capture off", '{"capture": "off"}', sure),
        _button("Capture auto", '{"capture": "auto"}', sure),
        '<input id="i-message" type="text" maxlength="500" aria-label="Message"'
        ' placeholder="Operator message">',
        _button("Set message", '{"message": ""}', sure, "i-message"),
    ))
    return (head + f"""<h1 id="d-room" data-room="{escape(room)}">Room {escape(room)}</h1>
<nav class="note" id="d-rooms" aria-label="Rooms"></nav>
<form id="d-login" class="card"><label for="d-token">Admin token</label>
<input id="d-token" type="password" autocomplete="current-password">
<button>Connect</button> <span id="d-status" role="status"></span></form>
<p id="d-state" class="note"></p>
<div class="grid">{tiles}</div>
<div class="charts">{charts}</div>
<div class="card controls"><p class="label">Controls (each asks to confirm)</p>{controls}
<p id="d-result" role="status"></p></div>
<p class="note"><a href="{escape(in_room("/_wr/status-page", room))}">Public status page</a>
</p>
</main></body></html>
""").encode()
