"""The request as the waiting room reads it (cookies, language, JSON or HTML), the
cookies it sets, and the scope it forwards to the origin."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import Scope

from waitingroom.web.asgi import safe_location, same_origin_path
from waitingroom.web.i18n import LANGUAGE_COOKIE, Languages
from waitingroom.web.request_id import REQUEST_ID_HEADER

_SCRIPTED = {b"sec-fetch-dest": b"empty", b"x-requested-with": b"xmlhttprequest"}
"""Headers (and values, lower case) that say a script made the request."""


@dataclass(slots=True)
class Request:
    """The parts of a request the waiting room reads, parsed once."""

    scope: Scope
    languages: Languages
    """The languages the waiting room speaks (the visitor's is picked from them)."""
    cookies: dict[str, str]
    wants_json: bool
    """A script asked (``fetch``/XHR: ``Sec-Fetch-Dest: empty`` or ``X-Requested-With:
    XMLHttpRequest``), or the caller takes JSON and not HTML: answer JSON, never a
    page."""
    secure: bool
    incoming_id: bytes | None = None
    """The caller's X-Request-Id header, if any."""
    request_id: str = ""
    """This request's id (the caller's if sane); empty for the room's own endpoints."""
    accept_language: str = ""
    last_event_id: str = ""
    """An event stream's ``Last-Event-ID`` (a browser reconnecting says the last it got)."""
    _language: str = ""  # worked out once, on first use

    @classmethod
    def parse(cls, scope: Scope, languages: Languages, incoming_id: bytes | None = None,
              rid: str = "") -> Request:
        """Read the cookies and the ``Accept`` headers of ``scope``."""
        cookie = accept = accept_language = last_event_id = ""
        scripted = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"accept-language":
                accept_language = value.decode("latin-1")
            elif name in _SCRIPTED and value.lower() == _SCRIPTED[name]:
                scripted = True
            elif name == b"last-event-id":
                last_event_id = value.decode("latin-1")
        wants_json = scripted or ("application/json" in accept and "text/html" not in accept)
        return cls(scope, languages, cookie_parser(cookie) if cookie else {}, wants_json,
                   scope.get("scheme") in ("https", "wss"), incoming_id, rid,
                   accept_language, last_event_id)

    def chosen_language(self) -> str | None:
        """A language picked with the switcher just now (``?lang=``), if any."""
        query: bytes = self.scope["query_string"]
        if b"lang=" not in query:
            return None
        lang = dict(parse_qsl(query.decode("latin-1"))).get("lang")
        return lang if lang in self.languages else None

    def language(self) -> str:
        """The language to answer this visitor's pages in."""
        if not self._language:
            self._language = self.languages.pick(
                self.chosen_language() or self.cookies.get(LANGUAGE_COOKIE),
                self.accept_language)
        return self._language

    def here(self) -> str:
        """This page's path and query, less any ``lang`` (for the language switcher)."""
        query = [(k, v) for k, v in parse_qsl(self.scope["query_string"].decode("latin-1"))
                 if k != "lang"]
        path: str = self.scope["path"]
        return path + ("?" + urlencode(query) if query else "")

    def forwarded(self, *extra: tuple[bytes, bytes]) -> Scope:
        """The scope for the origin: it carries the request id and ``extra`` headers,
        copied once and only when something is really forwarded."""
        return forwarded(self.scope, self.incoming_id, self.request_id, *extra)

    def cookie(self, name: str, value: str, max_age: int) -> bytes:
        """A ``Set-Cookie`` value for the waiting room's own cookies: HttpOnly,
        SameSite=Lax, whole site, Secure when this request came over TLS."""
        secure = "; Secure" if self.secure else ""
        return (f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
                f"{secure}").encode()

    def language_cookie(self) -> list[bytes]:
        """Remember a language picked with the switcher (a year; the whole site)."""
        lang = self.chosen_language()
        if lang is None:
            return []
        secure = "; Secure" if self.secure else ""
        return [f"{LANGUAGE_COOKIE}={lang}; Max-Age=31536000; Path=/; SameSite=Lax{secure}"
                .encode()]

    def site(self, public_url: str) -> str:
        """``scheme://host`` for links to be opened on another device: ``public_url``,
        or this request's own ``Host`` if that is a plain host name (shown to this
        visitor only, never sent elsewhere)."""
        if public_url:
            return public_url.rstrip("/")
        host = next((v.decode("latin-1") for k, v in self.scope["headers"] if k == b"host"),
                    "")
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{host if _HOST.fullmatch(host) else 'localhost'}"


_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def same_site(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``: never an open redirect,
    and always a valid ``Location`` (ASCII)."""
    return safe_location(target) if target and same_origin_path(target) else "/"


def with_cookies(response: Response, cookies: list[bytes]) -> Response:
    """``response``, setting ``cookies``."""
    response.raw_headers.extend((b"set-cookie", c) for c in cookies)
    return response


def forwarded(
    scope: Scope, incoming_id: bytes | None, rid: str, *extra: tuple[bytes, bytes]
) -> Scope:
    """A copy of ``scope`` carrying the request id and ``extra`` headers, with a list of
    headers of its own always: a server may add a chunked body's trailers to the list
    it gave (uvicorn does), after the room's headers were stripped from it."""
    encoded = rid.encode()
    if incoming_id == encoded and not extra:
        return {**scope, "headers": [*scope["headers"]]}
    headers = scope["headers"]
    if incoming_id is not None:
        headers = [h for h in headers if h[0] != REQUEST_ID_HEADER]
    return {**scope, "headers": [*headers, (REQUEST_ID_HEADER, encoded), *extra]}
