"""Headers between the visitor and the origin: those that belong to one connection
(never passed on) and the ``X-Forwarded-*`` the origin is told."""

from __future__ import annotations

from starlette.types import Scope

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
