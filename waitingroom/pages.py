"""The visitor's pages: the queue page, the "try again shortly" page, static assets.

Mobile-first and small: no external resources, one stylesheet and one script served
from the package under ``/_wr/static/``, and a page that works with JavaScript off.
"""

from __future__ import annotations

from html import escape
from importlib import resources

from waitingroom.status import Status

_ASSET_TYPES = {"queue.css": b"text/css; charset=utf-8",
                "queue.js": b"text/javascript; charset=utf-8"}
ASSETS: dict[str, tuple[bytes, bytes]] = {
    name: ((resources.files("waitingroom") / "static" / name).read_bytes(), content_type)
    for name, content_type in _ASSET_TYPES.items()
}
"""Static assets by file name: (body, content type)."""

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/_wr/static/queue.css">
{extra}</head><body><main>
"""


def _eta_words(seconds: int | None) -> str:
    if seconds is None:
        return "working it out\u2026"
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"


def queue_page(status: Status, *, grace_seconds: int) -> bytes:
    """The HTML page a waiting visitor sees in place of the page they asked for."""
    refresh = status.poll_after_seconds
    head = _HEAD.format(
        title="You're in line",
        extra=(f'<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>\n'
               '<script src="/_wr/static/queue.js" defer></script>\n'),
    )
    paused = "Entry is paused for a moment. You keep your place." if (
        status.state == "paused") else ""
    position = "\u2013" if status.position is None else str(status.position)
    message = escape(status.message or "")
    body = f"""<h1>You're in line</h1>
<div class="card" aria-live="polite">
<p class="label">Your place in line</p>
<p class="pos" id="wr-position">{position}</p>
<p class="label">Expected wait: <strong id="wr-eta">{_eta_words(status.eta_seconds)}</strong></p>
<p class="label" id="wr-state">{paused}</p>
<div class="bar" aria-hidden="true"><i></i></div>
</div>
<p class="msg" id="wr-message"{"" if message else " hidden"}>{message}</p>
<p class="note">We let people in first come, first served, as places free up.
This page updates by itself; when it's your turn it takes you straight on.
You can switch tabs, but if this page is closed for more than {grace_seconds} seconds
your place is given up.</p>
</main></body></html>
"""
    return (head + body).encode()


def unavailable_page() -> bytes:
    """Shown when the waiting room cannot reach its own state store for a moment."""
    head = _HEAD.format(title="One moment, please",
                        extra='<meta http-equiv="refresh" content="5">\n')
    return (head + """<h1>One moment, please</h1>
<div class="card"><p>We're very busy and couldn't check your place just now.
This page tries again by itself in a few seconds.</p></div>
</main></body></html>
""").encode()
