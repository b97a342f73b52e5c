"""What goes over the wire between the visitor and the origin: the request's head as
the origin is sent it (its framing checked), the headers that belong to one connection
(never passed on) and the ``X-Forwarded-*`` the origin is told."""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import quote

from starlette.types import Scope

from waitingroom.proxy.origin import OriginPool
from waitingroom.web.asgi import SESSION_HEADER
from waitingroom.web.request_id import REQUEST_ID_HEADER

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection",
})


def forwarded(scope: Scope, forwarded_for: bytes, host: bytes) -> list[tuple[bytes, bytes]]:
    """The ``X-Forwarded-For/Proto/Host`` headers for the origin: the visitor's
    address after those ``forwarded_for`` (as trusted) names, and what it asked for."""
    client = scope.get("client")
    if client:
        address = client[0].encode()
        forwarded_for = forwarded_for + b", " + address if forwarded_for else address
    headers = [(b"x-forwarded-for", forwarded_for)] if forwarded_for else []
    scheme = scope.get("scheme", "http")
    headers.append((b"x-forwarded-proto", {"ws": b"http", "wss": b"https"}.get(
        scheme, scheme.encode())))
    return headers + ([(b"x-forwarded-host", host)] if host else [])


# Not passed on as sent: Host names the origin; the X-Forwarded-* are rewritten; the
# framing headers are set by what is forwarded; a body is sent without waiting for
# 100 Continue, so the origin is not asked for one.
_SKIP_REQUEST = HOP_BY_HOP | {b"host", b"x-forwarded-for", b"x-forwarded-proto",
                              b"x-forwarded-host", b"content-length", b"expect"}
# Headers the waiting room adds for the origin: a visitor's Connection header cannot
# name them away.
_OURS = frozenset({SESSION_HEADER, REQUEST_ID_HEADER})
# Bytes a request target cannot hold (a server in front should have refused them).
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")


class RequestHead(NamedTuple):
    """A request as it goes to the origin: its head, and the body's framing."""

    head: bytes
    length: int | None
    """The body's declared length; None if chunked or without a body."""
    chunked: bool

    @property
    def has_body(self) -> bool:
        """Does a body follow the head?"""
        return self.chunked or bool(self.length)


def request_head(scope: Scope, pool: OriginPool, trust_forwarded_for: bool = False
                 ) -> RequestHead | None:
    """The request line and headers for the origin, and the body's framing; None if
    the request is not one to pass on (a target that could split the request, or a
    length that is not one plain number). The client's X-Forwarded-For is kept (and
    added to) only if ``trust_forwarded_for`` (a load balancer's)."""
    path: bytes = scope.get("raw_path") or quote(scope["path"]).encode()
    query: bytes = scope["query_string"]
    target = pool.prefix + path + (b"?" + query if query else b"")
    if _BAD_TARGET.search(target):
        return None
    method: str = scope["method"]
    headers: list[tuple[bytes, bytes]] = []
    forwarded_for = host = b""
    lengths: list[bytes] = []
    chunked = False
    connection_tokens: set[bytes] = set()
    for name, value in scope["headers"]:
        if name in _SKIP_REQUEST:
            if name == b"content-length":
                lengths.append(value.strip())
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"host":
                host = value
            elif name == b"x-forwarded-for" and trust_forwarded_for:
                forwarded_for = value
            elif name == b"connection":
                connection_tokens.update(t.strip().lower() for t in value.split(b","))
        else:
            headers.append((name, value))
    if connection_tokens - _OURS:  # headers named in Connection are hop-by-hop too
        headers = [(n, v) for n, v in headers if n not in connection_tokens or n in _OURS]
    length: int | None = None
    if not chunked and lengths:  # chunked wins over a length beside it (never both)
        if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
            return None
        length = int(lengths[0])
    headers += forwarded(scope, forwarded_for, host)
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    elif length:
        headers.append((b"content-length", b"%d" % length))
    lines = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", pool.host_header, b"\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    return RequestHead(b"".join(lines), length, chunked)


def response_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The origin's response headers less hop-by-hop ones (and those named in Connection)."""
    dropped = HOP_BY_HOP
    for name, value in headers:
        if name == b"connection":
            dropped = dropped | {t.strip().lower() for t in value.split(b",")}
    return [(name, value) for name, value in headers if name not in dropped]


