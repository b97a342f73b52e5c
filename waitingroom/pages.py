"""The visitor's pages: the queue page, the "try again shortly" page, static assets.

Mobile-first and small: no external resources, one stylesheet and one script served
from the package under ``/_wr/static/``, and a page that works with JavaScript off.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from html import escape
from importlib import resources
from urllib.parse import urlencode

from waitingroom._i18n import LANGUAGES, text
from waitingroom.capture import CaptureField
from waitingroom.status import Status

_ASSET_TYPES = {"queue.css": b"text/css; charset=utf-8",
                "queue.js": b"text/javascript; charset=utf-8",
                "dashboard.css": b"text/css; charset=utf-8",
                "dashboard.js": b"text/javascript; charset=utf-8",
                "pow.js": b"text/javascript; charset=utf-8",
                "leave.js": b"text/javascript; charset=utf-8"}
ASSETS: dict[str, tuple[bytes, bytes]] = {
    name: ((resources.files("waitingroom") / "static" / name).read_bytes(), content_type)
    for name, content_type in _ASSET_TYPES.items()
}
"""Static assets by file name: (body, content type)."""

_HEAD = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/_wr/static/queue.css">
{extra}</head><body><main>
"""


def _in_room(path: str, room: str) -> str:
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


def _t(key: str, lang: str, **values: object) -> str:
    """A text for an HTML text node, escaped (quotes may stay as they are)."""
    return escape(text(key, lang, **values), quote=False)


def _switcher(lang: str, here: str) -> str:
    """Links to this same page in every other language (``here``: path and query)."""
    joiner = "&" if "?" in here else "?"
    links = " ".join(
        f'<a href="{escape(here + joiner + urlencode({"lang": code}))}" lang="{code}" '
        f'hreflang="{code}">{escape(name)}</a>'
        for code, name in LANGUAGES.items() if code != lang)
    return f'<nav class="note" aria-label="{_t("language", lang)}">{links}</nav>'


def queue_page(status: Status, *, grace_seconds: int, lang: str = "en",
               here: str = "", notify: bool = False) -> bytes:
    """The HTML page a waiting visitor sees in place of the page they asked for, in
    ``lang``; ``here`` (the page's own path and query) is where the switcher points."""
    before_refresh, before_position, before_eta, before_state, rest = _queue_frame(
        status.room, status.message or "", lang, here, notify, grace_seconds)
    state = text(status.state, lang) if status.state in ("paused", "prequeue") else ""
    return "".join((
        before_refresh, str(status.poll_after_seconds),
        before_position, "\u2013" if status.position is None else str(status.position),
        before_eta, escape(_eta_words(status.eta_seconds, lang), quote=False),
        before_state, escape(state, quote=False), rest)).encode()


_LIVE = "\x00"
"""Marks where a visitor's own values go in the queue page's frame."""


@lru_cache(maxsize=256)
def _queue_frame(room: str, message: str, lang: str, here: str, notify: bool,
                 grace_seconds: int) -> tuple[str, ...]:
    """The queue page around its four live values (refresh interval, position, wait,
    state), in that order: the same for everyone in a room asking for the same page in
    the same language, so it is built once, not for every arrival."""
    here = here.replace(_LIVE, "\ufffd")
    message = escape(message.replace(_LIVE, "\ufffd"))
    head = _HEAD.format(
        lang=lang, title=_t("in_line", lang),
        extra=(f'<noscript><meta http-equiv="refresh" content="{_LIVE}"></noscript>\n'
               '<script src="/_wr/static/queue.js" defer></script>\n'),
    )
    # The page's script shows the same words, so it reads them from here.
    words = " ".join(f'data-{key.replace("_", "-")}="{escape(text(key, lang))}"' for key in (
        "eta_unknown", "eta_soon", "eta_minute", "eta_minutes", "paused", "prequeue"))
    body = f"""<h1>{_t("in_line", lang)}</h1>
<div class="card" aria-live="polite" id="wr-card" data-room="{escape(room)}" {words}>
<p class="label">{_t("your_place", lang)}</p>
<p class="pos" id="wr-position">{_LIVE}</p>
<p class="label">{_t("expected_wait", lang)} <strong id="wr-eta">{_LIVE}</strong></p>
<p class="label" id="wr-state">{_LIVE}</p>
<div class="bar" aria-hidden="true"><i></i></div>
</div>
<p class="msg" id="wr-message"{"" if message else " hidden"}>{message}</p>
<p class="note">{_t("how_it_works", lang, grace=grace_seconds)}</p>
<p class="note"><a href="{escape(_in_room("/_wr/status-page", room))}">\
{_t("status_page", lang)}</a> \u00b7 <a href="{escape(_resume_link(room, here))}">\
{_t("other_device", lang)}</a></p>
{_notify_form(room, here, lang) if notify else ""}{_switcher(lang, here) if here else ""}
</main></body></html>
"""
    return tuple((head + body).split(_LIVE))


def _notify_form(room: str, here: str, lang: str, error: str = "") -> str:
    """"Tell me when it's my turn": an email address or a number, then walk away."""
    problem = f'<p class="err" role="alert">{escape(error, quote=False)}</p>' if error else ""
    return f"""<form method="post" action="{escape(_in_room("/_wr/notify", room))}" class="card">
<p class="label">{_t("notify_title", lang)}</p><p>{_t("notify_how", lang)}</p>{problem}
<p class="field"><label for="n-email">{_t("email", lang)}</label><input id="n-email" \
name="email" type="email" maxlength="254" autocomplete="email"></p>
<p class="field"><label for="n-phone">{_t("phone", lang)}</label><input id="n-phone" \
name="phone" type="tel" maxlength="32" autocomplete="tel"></p>
<input type="hidden" name="to" value="{escape(here or "/")}">
<p><button type="submit">{_t("notify_button", lang)}</button></p></form>
"""


def notify_page(lang: str = "en", *, room: str = "", here: str = "",
                error: str = "") -> bytes:
    """After "tell me when it's my turn": the visitor may go; or, with ``error``, the
    form again saying what is wrong."""
    head = _HEAD.format(lang=lang, title=_t("notify_button", lang), extra="")
    body = (_notify_form(room, here, lang, error) if error else
            f'<div class="card" role="status"><p>{_t("notify_done", lang)}</p></div>')
    return (head + f"""<h1>{_t("notify_button", lang)}</h1>
{body}</main></body></html>
""").encode()


def _resume_link(room: str, here: str) -> str:
    return "/_wr/resume-link?" + urlencode({"room": room, "to": here or "/"})


def resume_link_page(url: str, qr_src: str, lang: str = "en") -> bytes:
    """The "continue on another device" page: the link, and the same as a QR code."""
    head = _HEAD.format(lang=lang, title=_t("other_device", lang), extra="")
    return (head + f"""<h1>{_t("other_device", lang)}</h1>
<div class="card"><p>{_t("other_device_how", lang)}</p>
<p><img src="{escape(qr_src)}" alt="{escape(text("qr_alt", lang))}" width="200" height="200">
</p><p class="note"><a href="{escape(url)}">{escape(url, quote=False)}</a></p></div>
</main></body></html>
""").encode()


def moved_page(lang: str = "en") -> bytes:
    """For the old device once its place moved to another one."""
    head = _HEAD.format(lang=lang, title=_t("moved_title", lang), extra="")
    return (head + f"""<h1>{_t("moved_title", lang)}</h1>
<div class="card" role="status"><p>{_t("moved", lang)}</p></div>
</main></body></html>
""").encode()


def resume_refused_page(lang: str = "en") -> bytes:
    """For a resume link that is used, expired, forged, or whose place is gone."""
    head = _HEAD.format(lang=lang, title=_t("moved_title", lang), extra="")
    return (head + f"""<h1>{_t("resume_refused", lang)}</h1>
<div class="card"><p><a href="/">{_t("to_shop", lang)}</a></p></div>
</main></body></html>
""").encode()


def unavailable_page(lang: str = "en") -> bytes:
    """Shown when the waiting room cannot reach its own state store for a moment."""
    head = _HEAD.format(lang=lang, title=escape(text("one_moment", lang)),
                        extra='<meta http-equiv="refresh" content="5">\n')
    return (head + f"""<h1>{_t("one_moment", lang)}</h1>
<div class="card"><p>{_t("unavailable", lang)}</p></div>
</main></body></html>
""").encode()


_AUTOCOMPLETE = {"name": "name", "email": "email", "phone": "tel"}
_INPUT_TYPES = {"email": "email", "phone": "tel"}


def _input(field: CaptureField, value: str, error: str | None) -> str:
    name = escape(field.name)
    described = f' aria-invalid="true" aria-describedby="e-{name}"' if error else ""
    required = " required" if field.required else ""
    if field.kind == "consent":
        checked = " checked" if value else ""
        control = (f'<label><input type="checkbox" name="{name}" value="yes"{checked}'
                   f'{required}{described}> I agree to be contacted about my order</label>')
    elif field.kind == "choice":
        options = "".join(
            f'<option{" selected" if c == value else ""}>{escape(c)}</option>'
            for c in field.choices)
        control = (f'<label for="f-{name}">{escape(field.label)}</label><select id="f-{name}" '
                   f'name="{name}"{required}{described}><option value="">Choose…</option>'
                   f"{options}</select>")
    else:
        kind = _INPUT_TYPES.get(field.kind, "text")
        auto = _AUTOCOMPLETE.get(field.name, "on")
        control = (f'<label for="f-{name}">{escape(field.label)}</label><input id="f-{name}" '
                   f'name="{name}" type="{kind}" maxlength="{field.max_length}" '
                   f'autocomplete="{auto}" value="{escape(value)}"{required}{described}>')
    problem = f'<span class="err" id="e-{name}">{escape(error)}</span>' if error else ""
    return f'<p class="field">{control}{problem}</p>'


def capture_page(
    fields: tuple[CaptureField, ...],
    *,
    csrf: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: Status,
    notice: str = "",
    lang: str = "en",
) -> bytes:
    """The data-capture form shown while the order system is unavailable. The
    operator's field labels and the validation messages are not translated."""
    values, errors = values or {}, errors or {}
    head = _HEAD.format(lang=lang, title=_t("capture_title", lang), extra="")
    place = f"<p>{_t('place_kept', lang, n=status.position)}</p>" if status.position else ""
    message = escape(status.message or "")
    summary = (f'<p class="err" role="alert">{escape(notice)}</p>' if notice else
               f'<p class="err" role="alert">{_t("check_fields", lang)}</p>'
               if errors else "")
    inputs = "".join(_input(f, values.get(f.name, ""), errors.get(f.name)) for f in fields)
    body = f"""<h1>{_t("capture_title", lang)}</h1>
<div class="card"><p>{_t("capture_why", lang)}</p>{place}</div>
<p class="msg" id="wr-message"{"" if message else " hidden"}>{message}</p>
{summary}<form method="post" action="{escape(_in_room("/_wr/capture", status.room))}" \
class="card" novalidate>
<input type="hidden" name="csrf" value="{escape(csrf)}">
{inputs}<p><button type="submit">{_t("send_details", lang)}</button></p></form>
<p class="note"><a href="{escape(_in_room("/_wr/status-page", status.room))}">\
{_t("status_page", lang)}</a></p>
</main></body></html>
"""
    return (head + body).encode()


def captured_page(reference: str, lang: str = "en") -> bytes:
    """Shown once a capture is durably stored: the reference to keep."""
    head = _HEAD.format(lang=lang, title=_t("received_title", lang), extra="")
    return (head + f"""<h1>{_t("received_title", lang)}</h1>
<div class="card" role="status"><p>{_t("received", lang)}</p>
<p class="pos">{escape(reference)}</p>
<p>{_t("received_keep", lang)}</p></div>
</main></body></html>
""").encode()


STATE_WORDS = {state: text(f"state_{state}", "en") for state in (
    "queueing", "paused", "open", "scheduled", "closed", "capture")}
"""The room's state in English words, for the status page's JSON twin."""


def challenge_page(room: str, challenge: str, difficulty: int) -> bytes:
    """Before a place in line, when ops ask for proof of work: the browser's script
    earns the place in a second or so, then the page becomes the queue."""
    head = _HEAD.format(lang="en", title="One moment, please",
                        extra='<script src="/_wr/static/pow.js" defer></script>\n')
    return (head + f"""<h1>One moment, please</h1>
<div class="card" id="wr-pow" data-room="{escape(room)}" data-challenge="{escape(challenge)}"
data-difficulty="{difficulty}" role="status"><p id="wr-pow-state">Getting your place in
line: this takes a second or two, and keeps bots from taking places.</p>
<noscript><p>This launch needs JavaScript switched on to give out places in line.</p>
</noscript></div></main></body></html>
""").encode()


def too_many_page(retry_after_seconds: int) -> bytes:
    """For a newcomer whose network took too many new places just now."""
    head = _HEAD.format(lang="en", title="One moment, please",
                        extra=f'<meta http-equiv="refresh" content="{retry_after_seconds}">\n')
    return (head + """<h1>One moment, please</h1>
<div class="card" role="status"><p>A lot of people from your network joined the line
just now. This page tries again by itself in a moment; you lose nothing by waiting.</p>
</div></main></body></html>
""").encode()


def invite_refused_page() -> bytes:
    """For an invite link that is used up, expired or not genuine."""
    head = _HEAD.format(lang="en", title="Invite not valid", extra="")
    return (head + """<h1>This invite can't be used</h1>
<div class="card"><p>The link has been used up, has expired, or is not complete.
You can still join the line like everyone else.</p><p><a href="/">Go to the shop</a></p>
</div></main></body></html>
""").encode()


def closed_page(status: Status, lang: str = "en") -> bytes:
    """For a newcomer once ops have closed the line."""
    head = _HEAD.format(lang=lang, title=escape(text("closed_title", lang)), extra="")
    message = escape(status.message or "")
    return (head + f"""<h1>{_t("closed_title", lang)}</h1>
<div class="card" role="status"><p>{_t("state_closed", lang)}
{_t("closed_sorry", lang)}</p></div>
<p class="msg"{"" if message else " hidden"}>{message}</p>
<p class="note"><a href="{escape(_in_room("/_wr/status-page", status.room))}">\
{_t("status_page", lang)}</a></p>
</main></body></html>
""").encode()


def status_page(state: str, message: str, message_at_ms: int, lang: str = "en",
                here: str = "") -> bytes:
    """One page that tells everyone the truth, readable with JavaScript off."""
    head = _HEAD.format(lang=lang, title=escape(text("status", lang)),
                        extra='<meta http-equiv="refresh" content="60">\n')
    when = (datetime.fromtimestamp(message_at_ms / 1000, UTC).strftime("%d %b %Y, %H:%M UTC")
            if message_at_ms and message else "")
    update = (f'<div class="msg"><p>{escape(message)}</p><p class="note">'
              f'{_t("posted", lang)} {when}</p></div>' if message else "")
    return (head + f"""<h1>{_t("status", lang)}</h1>
<div class="card" role="status"><p>{_t(f"state_{state}", lang)}</p></div>
{update}{_switcher(lang, here) if here else ""}</main></body></html>
""").encode()


def _button(label: str, change: str, question: str, input_id: str = "") -> str:
    data_input = f' data-input="{input_id}"' if input_id else ""
    return (f"<button type=\"button\" data-change='{change}' data-confirm=\"{question}\""
            f"{data_input}>{label}</button>")


def dashboard_page(room: str) -> bytes:
    """The ops dashboard shell; its numbers arrive over the token-protected stream."""
    head = _HEAD.format(lang="en",
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
<p class="note"><a href="{escape(_in_room("/_wr/status-page", room))}">Public status page</a>
</p>
</main></body></html>
""").encode()
