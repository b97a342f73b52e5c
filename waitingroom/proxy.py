"""A streaming reverse proxy as an ASGI app: forwards every request to one origin.

Requests go over pooled keep-alive HTTP/1.1 connections (``_origin.py``). Bodies
stream both ways; hop-by-hop headers are dropped; ``X-Forwarded-For/Proto/Host`` are
set; the origin's compression passes through untouched. An origin that is down,
breaks the protocol or is too slow gets the visitor a 502/504.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from waitingroom._origin import OriginError, OriginPool

logger = logging.getLogger("waitingroom.proxy")

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection",
})
# Not passed on as sent: Host names the origin; the X-Forwarded-* are rewritten; the
# framing headers are set by what is forwarded; a body is sent without waiting for
# 100 Continue, so the origin is not asked for one.
_SKIP_REQUEST = HOP_BY_HOP | {b"host", b"x-forwarded-for", b"x-forwarded-proto",
                              b"x-forwarded-host", b"content-length", b"expect"}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Bytes a request target cannot hold (a server in front should have refused them).
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")


class OriginProxy:
    """Forward HTTP requests to ``origin`` (``http[s]://host:port[/prefix]``; an https
    origin's certificate may also be signed by an authority in ``ca_file``)."""

    def __init__(
        self,
        origin: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 1000,
        ca_file: str = "",
    ) -> None:
        self._pool = OriginPool(origin.rstrip("/"), connect_timeout=connect_timeout,
                                read_timeout=read_timeout, max_connections=max_connections,
                                ca_file=ca_file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)
        else:  # websockets are not proxied
            await send({"type": "websocket.close", "code": 1003})

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        pool = self._pool
        request = _request_head(scope, pool)
        if request is None:
            await Response(b"Bad request target.\n", 400, media_type="text/plain")(
                scope, receive, send)
            return
        head, has_body, chunked = request
        method: str = scope["method"]
        try:
            origin = await pool.request(head, _body(receive) if has_body else None,
                                        chunked=chunked, no_body=method == "HEAD",
                                        safe=method in _SAFE_METHODS)
        except (TimeoutError, OriginError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            logger.warning("origin %s for %s %s: %r", "timed out" if timed_out else "failed",
                           method, scope["path"], exc)
            await Response(b"The shop did not answer in time. Please try again.\n"
                           if timed_out else b"The shop is not answering. Please try again.\n",
                           504 if timed_out else 502, media_type="text/plain",
                           headers={"retry-after": "5"})(scope, receive, send)
            return
        try:
            await send({"type": "http.response.start", "status": origin.status,
                        "headers": _response_headers(origin.headers)})
            if origin.complete:  # arrived with its head: one message
                await send({"type": "http.response.body", "body": origin.whole_body()})
                return
            # Mid-body failures propagate: the visitor's connection must be cut.
            async for chunk in origin.body():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            pool.release(origin)

    async def aclose(self) -> None:
        """Close pooled origin connections."""
        await self._pool.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _request_head(scope: Scope, pool: OriginPool) -> tuple[bytes, bool, bool] | None:
    """The request line and headers for the origin, whether a body follows and whether
    it is chunked; None if the request target is not one to pass on."""
    path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    query: bytes = scope["query_string"]
    target = pool.prefix + path + (b"?" + query if query else b"")
    if _BAD_TARGET.search(target):
        return None
    method: str = scope["method"]
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for = host = length = b""
    chunked = False
    connection_tokens: set[bytes] = set()
    for name, value in scope["headers"]:
        if name in _SKIP_REQUEST:
            if name == b"content-length":
                length = value.strip()
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"host":
                host = value
            elif name == b"x-forwarded-for":
                forwarded_for = value
            elif name == b"connection":
                connection_tokens.update(t.strip().lower() for t in value.split(b","))
        else:
            headers.append((name, value))
    if connection_tokens:  # headers named in Connection are hop-by-hop too
        headers = [(n, v) for n, v in headers if n not in connection_tokens]
    client = scope.get("client")
    if client:
        address = client[0].encode()
        forwarded_for = forwarded_for + b", " + address if forwarded_for else address
    if forwarded_for:
        headers.append((b"x-forwarded-for", forwarded_for))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if host:
        headers.append((b"x-forwarded-host", host))
    # Chunked wins over a length sent beside it (never both: that is how requests
    # are smuggled).
    has_body = chunked or length not in (b"", b"0")
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    elif has_body:
        headers.append((b"content-length", length))
    lines = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", pool.host_header, b"\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines), has_body, chunked


def _response_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The origin's response headers less hop-by-hop ones (and those named in Connection)."""
    dropped = HOP_BY_HOP
    for name, value in headers:
        if name == b"connection":
            dropped = dropped | {t.strip().lower() for t in value.split(b",")}
    return [(name, value) for name, value in headers if name not in dropped]


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return
