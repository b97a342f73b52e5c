"""uvicorn's HTTP/1.1 protocol (httptools) with limits on the request head and
deadlines on heads and bodies.

uvicorn reads a request line and headers of any size: an 8 MB header is accepted,
and forty unfinished 2 MB heads held 83 MB. It starts no timer until a response has
been sent: a connection that sends nothing, or a head or a body a byte a second, is
held for ever. ``waitingroom serve`` runs with this protocol instead; so can any
uvicorn serving the middleware::

    uvicorn.run(app, http=LimitedHttpToolsProtocol)

Past a limit the visitor gets 414 (URL) or 431 (headers) and the connection closes,
before the app sees anything; every request's head is counted, pipelined or not. A
head not whole within ``head_seconds`` of when one was due (the connection opened, or
the last answer ended) gets 408; a body slower than ``body_seconds`` plus one second
per ``body_min_rate`` bytes is cut off (the app sees the visitor leave). Limits are
class attributes (set once at start-up by :meth:`configure`), because uvicorn builds
protocols itself in every worker.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from waitingroom.settings import Settings

_REASONS = {408: b"Request Timeout", 414: b"URI Too Long",
            431: b"Request Header Fields Too Large"}
_TEXTS = {408: b"The request did not arrive in time.\n", 414: b"URI too long.\n",
          431: b"Request header fields too large.\n"}


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol refusing request heads over ``max_head_bytes``
    (431), with more than ``max_headers`` headers (431) or a URL over
    ``max_url_bytes`` (414), and holding no connection longer than its heads and
    bodies take at a sane pace (see the module's docstring)."""

    max_head_bytes: ClassVar[int] = 32 * 1024
    max_headers: ClassVar[int] = 100
    max_url_bytes: ClassVar[int] = 8 * 1024
    head_seconds: ClassVar[float] = 10.0
    body_seconds: ClassVar[float] = 20.0
    body_min_rate: ClassVar[int] = 500

    @classmethod
    def configured(cls, settings: Settings) -> type[LimitedHttpToolsProtocol]:
        """A protocol class with the limits of ``settings`` (this one left as it is),
        for a server run in a process that runs others too."""
        protocol = cast(type[LimitedHttpToolsProtocol], type(cls.__name__, (cls,), {}))
        protocol.configure(settings)
        return protocol

    @classmethod
    def configure(cls, settings: Settings) -> None:
        """Take the limits from ``settings`` (``max_request_head_bytes``,
        ``max_request_headers``, ``request_head_timeout_seconds``,
        ``request_body_timeout_seconds``, ``request_body_min_bytes_per_second``); the
        URL may use at most a quarter of the head."""
        cls.max_head_bytes = settings.max_request_head_bytes
        cls.max_headers = settings.max_request_headers
        cls.max_url_bytes = min(8 * 1024, settings.max_request_head_bytes // 4)
        cls.head_seconds = settings.request_head_timeout_seconds
        cls.body_seconds = settings.request_body_timeout_seconds
        cls.body_min_rate = settings.request_body_min_bytes_per_second

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0  # of the head being read: its finished lines
        self._unfinished = 0  # bytes read since its last finished line
        self._in_body = False
        self._refused = False
        self._due: tuple[float, int] | None = None  # (deadline, status): what is awaited
        self._body_bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A head is due."""
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing is due any more."""
        self._due = None
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Count the head's bytes before parsing them; refuse once over the limit."""
        if self._refused:
            return
        if not self._in_body:  # a head is coming: a body in the same packet is no part
            end = data.find(b"\r\n\r\n")
            self._unfinished += len(data) if end < 0 else end
            if self._head_bytes + self._unfinished > self.max_head_bytes:
                self._refuse(431)
                return
        HttpToolsProtocol.data_received(self, data)
        if self._refused:
            return
        if self._in_body:
            if self._due is None:  # a body began: it is due at a pace
                self._expect(self.body_seconds, 0)
        elif (newline := data.rfind(b"\n")) >= 0:
            # The lines before it were parsed and counted as each ended; what follows
            # is a head's unfinished line (a pipelined one's too), counted as it grows.
            self._unfinished = len(data) - newline - 1
            if self._head_bytes + self._unfinished > self.max_head_bytes:
                self._refuse(431)

    def on_message_begin(self) -> None:
        """A new head begins (pipelined ones included): counted from nothing."""
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Part of the head: counted (so is every pipelined request's)."""
        self._count(len(url))
        HttpToolsProtocol.on_url(self, url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Part of the head: counted (so is every pipelined request's). A chunked body's
        trailers are counted and dropped: uvicorn would add them to the headers the app
        already has, after the room stripped its own from them."""
        self._head_bytes += len(name) + len(value) + 4
        self._unfinished = 0
        if self._head_bytes > self.max_head_bytes:
            self._refuse(431)
            raise _Refused
        if not self._in_body:
            HttpToolsProtocol.on_header(self, name, value)

    def on_headers_complete(self) -> None:
        """The head is in: refuse a long URL or too many headers, else on to the app
        (and a body, if one follows, is due at a sane pace)."""
        self._head_bytes = self._unfinished = 0
        if len(self.url) > self.max_url_bytes:
            self._refuse(414)
            raise _Refused  # stops the parser; uvicorn's 400 for it is not sent
        if len(self.headers) > self.max_headers:
            self._refuse(431)
            raise _Refused
        HttpToolsProtocol.on_headers_complete(self)
        # A body follows unless the message completes at once (in the same parse, as a
        # request without one does): data_received starts its deadline if so.
        self._in_body, self._body_bytes, self._due = True, 0, None

    def on_body(self, body: bytes) -> None:
        """More of the body: the deadline moves on by what it brought."""
        self._body_bytes += len(body)
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        """The body is in: nothing is due until the answer is sent, or, if it was sent
        before the body was whole, the next head is due now."""
        self._in_body = False
        self._due = None
        HttpToolsProtocol.on_message_complete(self)
        if self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            self._await_head()

    def on_response_complete(self) -> None:
        """The answer is sent: the next head is due (unless one is in, pipelined: it
        runs now, and the head after it is due when its answer is sent)."""
        pipelined = bool(self.pipeline)
        HttpToolsProtocol.on_response_complete(self)
        if not (self.transport.is_closing() or pipelined or self._in_body):
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request it cannot parse (none after a refusal)."""
        if not self._refused:
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        self._unfinished = 0
        if self._head_bytes > self.max_head_bytes:
            self._refuse(431)
            raise _Refused

    def _await_head(self) -> None:
        self._expect(self.head_seconds, 408)

    def _expect(self, seconds: float, status: int) -> None:
        """Something is due within ``seconds``: past it, the connection is closed
        (with ``status`` as the answer, if any: 0 for none, mid-body)."""
        self._due = (time.monotonic() + seconds, status)
        if self._timer is None or self._timer.when() > self.loop.time() + seconds:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(seconds, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._due is None or self.transport.is_closing():
            return
        deadline, status = self._due
        if status == 0:  # a body: the more it brought, the later it is due
            deadline += self._body_bytes / self.body_min_rate
        late = deadline - time.monotonic()
        if late > 0:
            self._timer = self.loop.call_later(late, self._check)
        elif status:
            self._refuse(status)
        else:
            self.transport.abort()  # the app sees the visitor leave

    def _refuse(self, status: int) -> None:
        self._refused = True
        self._due = None
        text = _TEXTS[status]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, _REASONS[status], len(text), text))
        # A lingering close: what the visitor sent past the refusal is left unread, and
        # closing now would reset the connection, which can destroy the answer on its way.
        # The answer goes with a FIN; the connection is closed a moment later.
        self.flow.pause_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(_LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


_LINGER_SECONDS = 2.0
"""How long a refused connection stays half-closed for its answer to be read."""


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
