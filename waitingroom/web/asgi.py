"""Small ASGI helpers for the waiting room's own endpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

SESSION_HEADER = b"x-waitingroom-session"
"""Names the admitted session on every request the origin is sent (the origin contract)."""
RELEASE_HEADER = b"x-waitingroom-release"
"""An origin answer carrying ``X-WaitingRoom-Release: 1`` ends that session at once."""


def is_room_header(name: bytes) -> bool:
    """Is ``name`` one of the room's own headers (``X-WaitingRoom-*``), in any spelling a
    server or framework may read as one (any case, ``_`` for ``-``: WSGI's
    ``HTTP_X_WAITINGROOM_…``)? Only the room may send those, either way."""
    return name[:1] in b"xX" and name[1:14].lower().replace(b"_", b"-") == b"-waitingroom-"


def without_room_headers(send: Send) -> Send:
    """``send`` for an origin's answer: any of the room's own headers in it (the
    origin's signals to the room, or anything posing as them) never reaches the
    visitor."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            if any(is_room_header(name) for name, _ in headers):
                message["headers"] = [(n, v) for n, v in headers if not is_room_header(n)]
        await send(message)

    return wrapped


NO_STORE = {"cache-control": "no-store"}
PAGE_SECURITY = {
    # Every script and style comes from /_wr/static/: no inline code can run, and no
    # other site can frame a page (clickjacking) or receive a form.
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
"""Headers on every HTML page the waiting room itself serves."""


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] = NO_STORE
) -> Response:
    """A JSON answer (``body`` may already be encoded bytes), not cached by default."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(content, status, headers=dict(headers), media_type="application/json")


def html_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] = NO_STORE
) -> Response:
    """One of the waiting room's own pages, with :data:`PAGE_SECURITY` headers."""
    return Response(body, status, headers={**headers, **PAGE_SECURITY}, media_type="text/html")


_JSON_NO_STORE = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]


async def send_json(send: Send, body: bytes, cookies: list[bytes]) -> None:
    """Send a 200 JSON answer, not cached, setting ``cookies``: :func:`json_response`
    without building a Response, for the hottest path (the status poll)."""
    headers = [*_JSON_NO_STORE, (b"content-length", str(len(body)).encode())]
    headers += [(b"set-cookie", cookie) for cookie in cookies]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


MAX_FIELDS = 50
"""Fields a form or query the room reads may have."""
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON can spell them; UTF-8 cannot


class BadRequest(ValueError):
    """A form or query the room cannot read as it was sent (not UTF-8, too many
    fields); the message says what is wrong, for the visitor."""


def query_params(scope: Scope) -> dict[str, str]:
    """The query's fields (the last of a repeated name), strictly decoded: raises
    :class:`BadRequest` rather than guess at bytes that are not UTF-8."""
    query: bytes = scope["query_string"]
    return dict(_fields(query, "The address")) if query else {}


def form_fields(body: bytes, *, as_json: bool) -> dict[str, object]:
    """A urlencoded form's fields, or a JSON object's (``as_json``), strictly decoded:
    raises :class:`BadRequest` for anything that is not exactly what was sent."""
    if not as_json:
        return dict(_fields(body, "The form"))
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The form could not be read: send UTF-8 JSON.") from None
    if not isinstance(data, dict) or len(data) > MAX_FIELDS:
        raise BadRequest("The form could not be read: send one JSON object.")
    if any(isinstance(v, str) and _SURROGATE.search(v) for v in data.values()):
        raise BadRequest("The form could not be read: it holds text UTF-8 cannot.")
    return data


def _fields(raw: bytes, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                         max_num_fields=MAX_FIELDS, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"{what} could not be read: it is not UTF-8 text.") from None
    except ValueError:
        raise BadRequest(f"{what} has too many fields.") from None


def safe_location(target: str) -> str:
    """A same-site path (:func:`same_origin_path`) spelled for a ``Location`` header:
    any character outside ASCII percent-encoded as UTF-8, never an error."""
    return quote(target, safe="/?&=#%:@!$'()*+,;~-._[]")


class BodyTooLarge(Exception):
    """The request body exceeded the endpoint's limit."""


class ClientGone(Exception):
    """The client disconnected before sending the whole body."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, at most ``limit`` bytes."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return body


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone (for responses that stream)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def same_origin_path(target: str) -> bool:
    """A path on this site: no scheme, no host, no ``//`` or backslash tricks."""
    return (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and not any(ord(c) < 32 for c in target) and len(target) <= 2000)


SMALL_FORM_LIMIT = 1024
"""Bytes a small form (``/_wr/pow``, ``/_wr/notify``: a few short fields) may have."""


async def small_form(receive: Receive) -> dict[str, str] | None:
    """String fields of a small form or JSON body; None if it is too large. Raises
    :class:`BadRequest` if it cannot be read as sent."""
    try:
        body = await read_body(receive, SMALL_FORM_LIMIT)
    except BodyTooLarge:
        return None
    data = form_fields(body, as_json=body.lstrip().startswith(b"{"))
    return {k: v for k, v in data.items() if isinstance(v, str)}
