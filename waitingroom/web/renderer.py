"""Every visitor page, rendered from the templates (``templates.py``) in the visitor's
language (``i18n.py``), and the static assets.

Mobile-first and small: no external resources, one stylesheet and one script served
from the package under ``/_wr/static/``, and pages that work with JavaScript off. The
queue page, the hottest, is built once per room, language and page, then only each
visitor's own values are filled in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from babel.dates import format_datetime
from jinja2 import TemplateSyntaxError
from markupsafe import Markup, escape

from waitingroom.errors import ConfigError
from waitingroom.status import Status
from waitingroom.web.i18n import N_, STATES, CatalogError, Languages
from waitingroom.web.templates import (
    Brand,
    TemplatesError,
    brand_files,
    check_escaping,
    environment,
)

logger = logging.getLogger("waitingroom")

_ASSET_TYPES = {"queue.css": b"text/css; charset=utf-8",
                "queue.js": b"text/javascript; charset=utf-8",
                "dashboard.css": b"text/css; charset=utf-8",
                "dashboard.js": b"text/javascript; charset=utf-8",
                "pow.js": b"text/javascript; charset=utf-8",
                "leave.js": b"text/javascript; charset=utf-8",
                "arrive.js": b"text/javascript; charset=utf-8",
                "keep.js": b"text/javascript; charset=utf-8",
                "client.js": b"text/javascript; charset=utf-8",
                "client.mjs": b"text/javascript; charset=utf-8"}
ASSETS: dict[str, tuple[bytes, bytes]] = {
    name: ((resources.files("waitingroom.web") / "static" / name).read_bytes(), content_type)
    for name, content_type in _ASSET_TYPES.items()
}
"""Static assets by file name: (body, content type)."""


def in_room(path: str, room: str) -> str:
    """``path`` with the room named, for the room's own endpoints."""
    return link(path, room=room)


def link(path: str, **query: str) -> str:
    """``path`` with ``query``."""
    return f"{path}?{urlencode(query)}"


def eta_range(minutes: int) -> tuple[int, int]:
    """An honest range around an estimate: the rate it comes from moves, so the further
    off, the wider (±20%, at least a minute either side)."""
    spread = max(1, round(minutes * 0.2))
    return max(1, minutes - spread), minutes + spread


@dataclass(frozen=True, slots=True)
class RoomLook:
    """What a room's queue page says besides the visitor's own values (hashable: the
    page's frame is cached by it)."""

    grace_seconds: int = 60
    notify: bool = False
    """Offer "tell me when it's my turn"."""
    session_idle_seconds: int = 300
    session_max_seconds: int = 1800


_LIVE = re.compile("\x00([a-z_]+)\x00")
"""Marks where a visitor's own values go in a page's frame."""
LIVE_WORDS = {
    "eta-unknown": N_("working it out\u2026"),
    "eta-soon": N_("less than a minute"),
    "eta-minute": N_("about 1 minute"),
    "eta-minutes": N_("{low} to {high} minutes"),
    "eta-exact": N_("about {n} minutes"),
    "paused": N_("Entry is paused for a moment. You keep your place."),
    "prequeue": N_("The sale starts soon. Everyone here before the start gets a place in "
                   "random order at the start, so there is no need to rush: keep this "
                   "page open."),
    "sold-out": N_("Sold out for now. You keep your place: if more stock comes in, the line "
                   "moves on again."),
    "draw": N_("You're in the draw: each time a place frees up, one of those waiting is "
               "drawn at random. Keep this page open to take your turn when it comes."),
    "in-draw": N_("In the draw"),
    "chance-likely": N_("The stock should last to your place."),
    "chance-uncertain": N_("The stock may run out around your place in line."),
    "chance-unlikely": N_("The stock will most likely run out before your turn. You can "
                          "stay in line in case more comes in.")}
"""The words the queue page shows for a visitor's live values, by the name its script
reads them under (``data-<name>``): one list for the page as built and as updated."""
_STATE_WORDS = {"paused": "paused", "prequeue": "prequeue", "sold_out": "sold-out",
                "draw": "draw"}
"""The states that have words of their own, and the name of those words."""


_LIVE_PARTS = ('id="wr-card"', 'id="wr-position"', 'id="wr-eta"', "/_wr/static/queue.js")
"""What the queue page's script needs of the page to update it live."""
_QUEUE_LIVE = ("refresh", "position", "wait_hidden", "eta", "state", "chance",
               "chance_level", "interest_hidden")
"""The queue page's live values, in the order :meth:`Pages.queue` gives them."""



def _unmarked(words: str) -> str:
    return words.replace("\x00", "\ufffd")


def _filled(frame: tuple[str, tuple[tuple[int, str], ...]], values: Sequence[str]) -> bytes:
    """A page from its frame and its live values (escaped), in the frame's order."""
    first, rest = frame
    page = [first]
    for value, literal in rest:
        page += (values[value], literal)
    return "".join(page).encode()


class Pages:
    """The visitor pages of one waiting room, in its languages and the shop's look."""

    def __init__(self, *, templates_dir: str = "", locales_dir: str = "",
                 brand: Brand | None = None) -> None:
        """Read the operator's catalogs and templates, and render every page once in
        every language: a :class:`ConfigError` names ``locales_dir`` or
        ``templates_dir`` if any of theirs cannot be used."""
        try:
            self.languages = Languages(locales_dir)
        except CatalogError as exc:
            raise ConfigError("locales_dir", str(exc)) from None
        self.env = environment(templates_dir)
        self.brand = brand or Brand()
        self._frame = lru_cache(maxsize=512)(self._build_frame)
        self._unavailable = lru_cache(maxsize=64)(self._unavailable_page)
        self._arriving = lru_cache(maxsize=64)(self._arriving_page)
        self._eta_html = lru_cache(maxsize=2048)(self._eta_words_html)
        self._words_html = lru_cache(maxsize=256)(self._live_words_html)
        self.env.globals["live_words"] = LIVE_WORDS
        try:
            if templates_dir:
                check_escaping(self.env, templates_dir)
            self.brand_files = brand_files(templates_dir)
            """The operator's files served under ``/_wr/brand/``, by name."""
        except TemplatesError as exc:
            raise ConfigError("templates_dir", str(exc)) from None
        for lang in self.languages.by_code:
            try:
                self.queue(Status("check", "queued", position=1, message="m"), lang=lang,
                           here="/")
                for name, values in _SAMPLES:
                    self.render(name, lang, here="/", **values)
            except Exception as exc:  # whatever a shop's template may raise, found now
                where = f" ({exc.filename}, line {exc.lineno})" if isinstance(
                    exc, TemplateSyntaxError) else ""
                raise ConfigError("templates_dir", f"a page cannot be shown in {lang!r}"
                                  f"{where}: {type(exc).__name__}: {exc}") from None
        live = self.queue(Status("check", "queued", position=1), here="/").decode()
        missing = [part for part in _LIVE_PARTS if part not in live]
        if missing:
            logger.warning("templates_dir: the queue page lacks %s, which its script needs "
                           "to update it live; it will only refresh itself every few "
                           "seconds (keep them from our queue.html)", ", ".join(missing))

    def render(self, name: str, lang: str, *, here: str = "", **values: Any) -> bytes:
        """The template ``name`` in ``lang`` with ``values``; ``here`` (the page's own
        path and query) is where the language switcher's links point."""
        language = self.languages.by_code[lang]
        gettext, ngettext = self.languages.bound(lang)
        switch = [(code, other.name, _with_lang(here, code))
                  for code, other in self.languages.by_code.items() if code != lang]
        return self.env.get_template(name).render(
            lang=lang, direction=language.direction, _=gettext, ngettext=ngettext,
            brand=self.brand, here=here, switch=switch if here else [], in_room=in_room,
            link=link, states=STATES, **values).encode()

    def framed(self, name: str, lang: str, live: dict[str, str], *, here: str = "",
               **fixed: Hashable) -> bytes:
        """The template ``name``, built once for each set of ``fixed`` values (and
        language and ``here``), with each visitor's ``live`` values filled in (text,
        escaped here). A template shows live values but cannot test them: at build
        time they are placeholders."""
        frame = self._frame(name, lang, _unmarked(here), tuple(live), tuple(fixed.items()))
        return _filled(frame, [escape(value) for value in live.values()])

    def _build_frame(self, name: str, lang: str, here: str, live: tuple[str, ...],
                     fixed: tuple[tuple[str, Hashable], ...]
                     ) -> tuple[str, tuple[tuple[int, str], ...]]:
        """The page around its live values: its first text, then each live value's
        place in ``live`` and the text after it."""
        values = {key: _unmarked(value) if isinstance(value, str) else value
                  for key, value in fixed}
        page = self.render(name, lang, here=here, **values, **{
            key: Markup(f"\x00{key}\x00") for key in live})  # noqa: S704 (our markers)
        first, *parts = _LIVE.split(page.decode())
        return first, tuple((live.index(parts[i]), parts[i + 1])
                            for i in range(0, len(parts), 2))

    def queue(self, status: Status, *, look: RoomLook = RoomLook(), lang: str = "en",
              here: str = "") -> bytes:
        """The page a waiting visitor sees in place of the page they asked for."""
        # framed(), less its general work: this page answers every new arrival.
        frame = self._frame("queue.html", lang, _unmarked(here), _QUEUE_LIVE, (
            ("room", status.room), ("message", status.message or ""), ("look", look),
            ("drawn", status.state in ("draw", "prequeue")),
            ("sold_out", status.state == "sold_out")))
        minutes = status.eta_seconds if status.eta_seconds is None else (
            0 if status.eta_seconds < 60 else round(status.eta_seconds / 60))
        level = status.chance.level if status.chance else ""
        return _filled(frame, (
            str(status.poll_after_seconds),
            self._words_html("in-draw", lang) if status.state == "draw" else
            "\u2013" if status.position is None else str(status.position),
            # No wait: nothing is left, or no order to wait in.
            " hidden" if status.state in ("sold_out", "draw") else "",
            self._eta_html(minutes, lang, exact=status.state == "prequeue"),
            self._words_html(_STATE_WORDS.get(status.state, ""), lang),
            self._words_html("chance-" + level if level else "", lang), level,
            "" if level == "unlikely" or status.state == "sold_out" else " hidden"))

    def _eta_words_html(self, minutes: int | None, lang: str, *, exact: bool = False) -> str:
        return str(escape(self.eta_words(minutes, lang, exact=exact)))

    def _live_words_html(self, name: str, lang: str) -> str:
        """The words :data:`LIVE_WORDS` names (nothing for another name), escaped."""
        return (str(escape(self.languages.gettext(lang, LIVE_WORDS[name])))
                if name in LIVE_WORDS else "")

    def eta_words(self, minutes: int | None, lang: str, *, exact: bool = False) -> str:
        """The expected wait in words (``minutes``: 0 for under one, None for not yet
        measured): a range once measured, never a guess; ``exact``: a known time (to
        the sale's start), no range."""
        gettext = self.languages.gettext
        if minutes is None:
            return gettext(lang, LIVE_WORDS["eta-unknown"])
        if minutes == 0:
            return gettext(lang, LIVE_WORDS["eta-soon"])
        if minutes <= 1:
            return gettext(lang, LIVE_WORDS["eta-minute"])
        if exact:
            return gettext(lang, LIVE_WORDS["eta-exact"], n=minutes)
        low, high = eta_range(minutes)
        return gettext(lang, LIVE_WORDS["eta-minutes"], low=low, high=high)

    def unavailable(self, lang: str) -> bytes:
        """Shown when the waiting room cannot reach its own state store for a moment."""
        return self._unavailable(lang)

    def _unavailable_page(self, lang: str) -> bytes:
        return self.render("unavailable.html", lang)

    def arriving(self, lang: str) -> bytes:
        """A first visit's page: it asks again at once with the cookie it came with,
        which takes the place (and says so if the browser keeps no cookies)."""
        return self._arriving(lang)

    def _arriving_page(self, lang: str) -> bytes:
        return self.render("arriving.html", lang)

    def too_many(self, retry_after_seconds: int, lang: str) -> bytes:
        """For a newcomer whose network took too many new places just now."""
        return self.render("too_many.html", lang, retry_after_seconds=retry_after_seconds)

    def closed(self, status: Status, lang: str, here: str = "") -> bytes:
        """For a newcomer once ops have closed the line."""
        return self.render("closed.html", lang, here=here, room=status.room,
                           message=status.message or "")

    def sold_out(self, status: Status, lang: str, here: str = "") -> bytes:
        """For a newcomer while the room has nothing left to sell."""
        return self.render("sold_out.html", lang, here=here, room=status.room,
                           message=status.message or "")

    def full(self, status: Status, lang: str, here: str = "", *, no_line: bool = False) -> bytes:
        """For a newcomer while the line is as long as ops allow (``no_line``: the room
        keeps none, method ``reject``, and every place is taken)."""
        return self.render("full.html", lang, here=here, room=status.room,
                           message=status.message or "", no_line=no_line)

    def status(self, state: str, message: str, message_at_ms: int, lang: str,
               here: str = "") -> bytes:
        """One page that tells everyone the truth, readable with JavaScript off. It does
        not reload itself (a page changing under a reader fails WCAG 2.2.1): a link does."""
        posted = (format_datetime(datetime.fromtimestamp(message_at_ms / 1000, UTC),
                                  "medium", tzinfo=UTC, locale=lang) + " UTC"
                  if message_at_ms and message else "")
        return self.render("status.html", lang, here=here, state=state, message=message,
                           posted=posted)


def state_words(state: str) -> str:
    """The room's state in English words, for the status page's JSON twin."""
    return STATES[state]


def _with_lang(here: str, code: str) -> str:
    return here + ("&" if "?" in here else "?") + urlencode({"lang": code})


_FIELD = {"name": "f", "label": "F", "value": "v", "error": "e", "required": True,
          "max_length": 10, "choices": ("a", "b"), "input_type": "text",
          "autocomplete": "on"}
_SAMPLES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("unavailable.html", {}), ("arriving.html", {}),
    ("too_many.html", {"retry_after_seconds": 5}),
    ("closed.html", {"room": "r", "message": "m"}),
    ("sold_out.html", {"room": "r", "message": "m"}),
    ("full.html", {"room": "r", "message": "m", "no_line": False}),
    ("full.html", {"room": "r", "message": "m", "no_line": True}),
    ("status.html", {"state": "queueing", "message": "m", "posted": "p"}),
    ("notify.html", {"room": "r", "error": "", "claim_minutes": 15}),
    ("notify.html", {"room": "r", "error": "e", "claim_minutes": 15}),
    ("resume_link.html", {"url": "/u", "qr_src": "/q", "room": "r", "back": "/"}),
    ("moved.html", {}), ("resume_refused.html", {}),
    ("challenge.html", {"room": "r", "challenge": "c", "difficulty": 1}),
    ("invite_refused.html", {}),
    *(("capture.html", {"room": "r", "csrf": "c", "position": 1, "has_place": True,
                        "message": "m", "notice": "", "has_errors": True,
                        "interest": interest, "fields": [{**_FIELD, "kind": kind} for kind in (
                            "text", "consent", "choice")]}) for interest in (False, True)),
    ("captured.html", {"reference": "R", "interest": False}),
    ("captured.html", {"reference": "R", "interest": True}))
"""Every page but the queue page, with values of each kind it is given: each is rendered
once at start-up in every language, so a template that cannot render stops start-up."""
