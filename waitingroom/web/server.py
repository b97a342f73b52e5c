"""uvicorn's HTTP/1.1 protocol (httptools) with limits on the request head.

uvicorn reads a request line and headers of any size: an 8 MB header is accepted,
and forty unfinished 2 MB heads held 83 MB. ``waitingroom serve`` runs with this
protocol instead; so can any uvicorn serving the middleware::

    uvicorn.run(app, http=LimitedHttpToolsProtocol)

Past a limit the visitor gets 414 (URL) or 431 (headers) and the connection closes,
before the app sees anything. Limits are class attributes (set once at start-up by
:meth:`configure`), because uvicorn builds protocols itself in every worker.
"""

from __future__ import annotations

import socket
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from waitingroom.settings import Settings

_REASONS = {414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing request heads over ``max_head_bytes``
    (431), with more than ``max_headers`` headers (431) or a URL over
    ``max_url_bytes`` (414)."""

    max_head_bytes: ClassVar[int] = 32 * 1024
    max_headers: ClassVar[int] = 100
    max_url_bytes: ClassVar[int] = 8 * 1024

    @classmethod
    def configure(cls, settings: Settings) -> None:
        """Take the limits from ``settings`` (``max_request_head_bytes``,
        ``max_request_headers``); the URL may use at most a quarter of the head."""
        cls.max_head_bytes = settings.max_request_head_bytes
        cls.max_headers = settings.max_request_headers
        cls.max_url_bytes = min(8 * 1024, settings.max_request_head_bytes // 4)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        """Count the head's bytes before parsing them; refuse once over the limit."""
        if self._refused:
            return
        cycle = self.cycle
        if cycle is None or not cycle.more_body:  # between requests: a head is coming
            end = data.find(b"\r\n\r\n")  # a body in the same packet is no part of it
            self._head_bytes += len(data) if end < 0 else end
            if self._head_bytes > self.max_head_bytes:
                self._refuse(431)
                return
        HttpToolsProtocol.data_received(self, data)

    def on_headers_complete(self) -> None:
        """The head is in: refuse a long URL or too many headers, else on to the app."""
        self._head_bytes = 0
        if len(self.url) > self.max_url_bytes:
            self._refuse(414)
            raise _Refused  # stops the parser; uvicorn's 400 for it is not sent
        if len(self.headers) > self.max_headers:
            self._refuse(431)
            raise _Refused
        HttpToolsProtocol.on_headers_complete(self)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (none after a refusal)."""
        if not self._refused:
            super().send_400_response(msg)

    def _refuse(self, status: int) -> None:
        self._refused = True
        text = b"Request header fields too large.\n" if status == 431 else b"URI too long.\n"
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, _REASONS[status], len(text), text))
        self.transport.close()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a refused request."""


def port_in_use(host: str, port: int) -> bool:
    """Is something already listening on ``host:port``? (Tried by binding, as the
    server will: so a start-up can say so in one line rather than a traceback.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False
