"""The pages every room shows (the queue page, the closed, status and "try again
shortly" pages), the frame the features' own pages share, and the static assets.

Mobile-first and small: no external resources, one stylesheet and one script served
from the package under ``/_wr/static/``, and a page that works with JavaScript off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from importlib import resources
from urllib.parse import urlencode

from waitingroom.status import Status
from waitingroom.web.i18n import LANGUAGES, text

_ASSET_TYPES = {"queue.css": b"text/css; charset=utf-8",
                "queue.js": b"text/javascript; charset=utf-8",
                "dashboard.css": b"text/css; charset=utf-8",
                "dashboard.js": b"text/javascript; charset=utf-8",
                "pow.js": b"text/javascript; charset=utf-8",
                "leave.js": b"text/javascript; charset=utf-8",
                "keep.js": b"text/javascript; charset=utf-8"}
ASSETS: dict[str, tuple[bytes, bytes]] = {
    name: ((resources.files("waitingroom.web") / "static" / name).read_bytes(), content_type)
    for name, content_type in _ASSET_TYPES.items()
}
"""Static assets by file name: (body, content type)."""

HEAD = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/_wr/static/queue.css">
{extra}</head><body><main>
"""


def in_room(path: str, room: str) -> str:
    """``path`` with the room named, for the room's own endpoints."""
    return f"{path}?{urlencode({'room': room})}"


def _eta_words(seconds: int | None, lang: str) -> str:
    if seconds is None:
        return text("eta_unknown", lang)
    if seconds < 60:
        return text("eta_soon", lang)
    minutes = round(seconds / 60)
    if minutes <= 1:
        return text("eta_minute", lang)
    low, high = eta_range(minutes)
    return text("eta_minutes", lang, low=low, high=high)


def eta_range(minutes: int) -> tuple[int, int]:
    """An honest range around an estimate: the rate it comes from moves, so the further
    off, the wider (±20%, at least a minute either side)."""
    spread = max(1, round(minutes * 0.2))
    return max(1, minutes - spread), minutes + spread


def html_text(key: str, lang: str, **values: object) -> str:
    """A text for an HTML text node, escaped (quotes may stay as they are)."""
    return escape(text(key, lang, **values), quote=False)


def switcher(lang: str, here: str) -> str:
    """Links to this same page in every other language (``here``: path and query)."""
    joiner = "&" if "?" in here else "?"
    links = " ".join(
        f'<a href="{escape(here + joiner + urlencode({"lang": code}))}" lang="{code}" '
        f'hreflang="{code}">{escape(name)}</a>'
        for code, name in LANGUAGES.items() if code != lang)
    return f'<nav class="note" aria-label="{html_text("language", lang)}">{links}</nav>'


@dataclass(frozen=True, slots=True)
class RoomLook:
    """What a room's queue page says besides the visitor's own values (hashable: the
    page's frame is cached by it)."""

    grace_seconds: int = 60
    notify: bool = False
    """Offer "tell me when it's my turn"."""
    shop_name: str = ""
    session_idle_seconds: int = 300
    session_max_seconds: int = 1800


def queue_page(status: Status, *, look: RoomLook = RoomLook(), lang: str = "en",
               here: str = "") -> bytes:
    """The HTML page a waiting visitor sees in place of the page they asked for, in
    ``lang``; ``here`` (the page's own path and query) is where the switcher points."""
    before_refresh, before_position, before_eta, before_state, rest = _queue_frame(
        status.room, status.message or "", lang, here, look)
    state = text(status.state, lang) if status.state in ("paused", "prequeue") else ""
    return "".join((
        before_refresh, str(status.poll_after_seconds),
        before_position, "\u2013" if status.position is None else str(status.position),
        before_eta, escape(_eta_words(status.eta_seconds, lang), quote=False),
        before_state, escape(state, quote=False), rest)).encode()


_LIVE = "\x00"
"""Marks where a visitor's own values go in the queue page's frame."""


@lru_cache(maxsize=256)
def _queue_frame(room: str, message: str, lang: str, here: str,
                 look: RoomLook) -> tuple[str, ...]:
    """The queue page around its four live values (refresh interval, position, wait,
    state), in that order: the same for everyone in a room asking for the same page in
    the same language, so it is built once, not for every arrival."""
    here = here.replace(_LIVE, "\ufffd")
    message = escape(message.replace(_LIVE, "\ufffd"))
    shop = escape(look.shop_name.replace(_LIVE, "\ufffd"))
    title = html_text("in_line", lang) + (f" \u2013 {shop}" if shop else "")
    head = HEAD.format(
        lang=lang, title=title,
        extra=(f'<noscript><meta http-equiv="refresh" content="{_LIVE}"></noscript>\n'
               '<script src="/_wr/static/queue.js" defer></script>\n'),
    )
    turn = text("your_turn_session", lang, max=look.session_max_seconds // 60,
                idle=max(1, look.session_idle_seconds // 60))
    # The page's script shows the same words, so it reads them from here.
    words = " ".join(f'data-{key.replace("_", "-")}="{escape(value)}"' for key, value in (
        *((k, text(k, lang)) for k in ("eta_unknown", "eta_soon", "eta_minute",
                                       "eta_minutes", "paused", "prequeue", "updated",
                                       "your_turn")),
        ("your_turn_session", turn)))
    body = f"""{f'<p class="shop">{shop}</p>' if shop else ""}<h1>{html_text("in_line", lang)}</h1>
<div class="card" aria-live="polite" id="wr-card" data-room="{escape(room)}" {words}>
<p class="turn" id="wr-turn" role="alert" hidden></p>
<p class="label">{html_text("your_place", lang)}</p>
<p class="pos" id="wr-position">{_LIVE}</p>
<p class="label">{html_text("expected_wait", lang)} <strong id="wr-eta">{_LIVE}</strong></p>
<p class="label" id="wr-state">{_LIVE}</p>
<div class="bar" id="wr-progress" role="progressbar" aria-label="{html_text("progress", lang)}"
aria-valuemin="0" aria-valuemax="100" aria-valuenow="0" hidden><i></i></div>
<p class="note" id="wr-updated"></p>
</div>
<p class="msg" id="wr-message"{"" if message else " hidden"}>{message}</p>
<p class="note">{html_text("how_it_works", lang, grace=look.grace_seconds)}</p>
<p class="note"><a href="{escape(in_room("/_wr/status-page", room))}">\
{html_text("status_page", lang)}</a> \u00b7 <a href="{escape(_resume_link(room, here))}">\
{html_text("other_device", lang)}</a></p>
{notify_form(room, here, lang) if look.notify else ""}{switcher(lang, here) if here else ""}
</main></body></html>
"""
    return tuple((head + body).split(_LIVE))


def notify_form(room: str, here: str, lang: str, error: str = "") -> str:
    """"Tell me when it's my turn": an email address or a number, then walk away."""
    problem = f'<p class="err" role="alert">{escape(error, quote=False)}</p>' if error else ""
    return f"""<form method="post" action="{escape(in_room("/_wr/notify", room))}" class="card">
<p class="label">{html_text("notify_title", lang)}</p>\
<p>{html_text("notify_how", lang)}</p>{problem}
<p class="field"><label for="n-email">{html_text("email", lang)}</label><input id="n-email" \
name="email" type="email" maxlength="254" autocomplete="email"></p>
<p class="field"><label for="n-phone">{html_text("phone", lang)}</label><input id="n-phone" \
name="phone" type="tel" maxlength="32" autocomplete="tel"></p>
<input type="hidden" name="to" value="{escape(here or "/")}">
<p><button type="submit">{html_text("notify_button", lang)}</button></p></form>
"""


def _resume_link(room: str, here: str) -> str:
    return "/_wr/resume-link?" + urlencode({"room": room, "to": here or "/"})


def unavailable_page(lang: str = "en") -> bytes:
    """Shown when the waiting room cannot reach its own state store for a moment."""
    head = HEAD.format(lang=lang, title=escape(text("one_moment", lang)),
                        extra='<meta http-equiv="refresh" content="5">\n')
    return (head + f"""<h1>{html_text("one_moment", lang)}</h1>
<div class="card"><p>{html_text("unavailable", lang)}</p></div>
</main></body></html>
""").encode()


STATE_WORDS = {state: text(f"state_{state}", "en") for state in (
    "queueing", "paused", "open", "scheduled", "closed", "capture")}
"""The room's state in English words, for the status page's JSON twin."""


def too_many_page(retry_after_seconds: int) -> bytes:
    """For a newcomer whose network took too many new places just now."""
    head = HEAD.format(lang="en", title="One moment, please",
                        extra=f'<meta http-equiv="refresh" content="{retry_after_seconds}">\n')
    return (head + """<h1>One moment, please</h1>
<div class="card" role="status"><p>A lot of people from your network joined the line
just now. This page tries again by itself in a moment; you lose nothing by waiting.</p>
</div></main></body></html>
""").encode()


def closed_page(status: Status, lang: str = "en") -> bytes:
    """For a newcomer once ops have closed the line."""
    head = HEAD.format(lang=lang, title=escape(text("closed_title", lang)), extra="")
    message = escape(status.message or "")
    return (head + f"""<h1>{html_text("closed_title", lang)}</h1>
<div class="card" role="status"><p>{html_text("state_closed", lang)}
{html_text("closed_sorry", lang)}</p></div>
<p class="msg"{"" if message else " hidden"}>{message}</p>
<p class="note"><a href="{escape(in_room("/_wr/status-page", status.room))}">\
{html_text("status_page", lang)}</a></p>
</main></body></html>
""").encode()


def status_page(state: str, message: str, message_at_ms: int, lang: str = "en",
                here: str = "") -> bytes:
    """One page that tells everyone the truth, readable with JavaScript off. It does
    not reload itself (a page changing under a reader fails WCAG 2.2.1): a link does."""
    head = HEAD.format(lang=lang, title=escape(text("status", lang)), extra="")
    when = (datetime.fromtimestamp(message_at_ms / 1000, UTC).strftime("%d %b %Y, %H:%M UTC")
            if message_at_ms and message else "")
    update = (f'<div class="msg"><p>{escape(message)}</p><p class="note">'
              f'{html_text("posted", lang)} {when}</p></div>' if message else "")
    return (head + f"""<h1>{html_text("status", lang)}</h1>
<div class="card" role="status"><p>{html_text(f"state_{state}", lang)}</p></div>
{update}<p class="note"><a href="{escape(here or "?")}">{html_text("reload", lang)}</a></p>
{switcher(lang, here) if here else ""}</main></body></html>
""").encode()
