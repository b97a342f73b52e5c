"""Small ASGI helpers for the waiting room's own endpoints."""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Send

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
