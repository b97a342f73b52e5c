"""One keep-alive HTTP/1.1 connection to the origin, for the proxy's admitted requests.

Requests go out as one write of bytes the ASGI server already gave us; responses
are parsed by httptools (llhttp, the parser uvicorn and Node use). aiohttp's client
did the same job for about two and a half times the CPU per request
(``loadtests/bench.py``'s pass-through baseline is built on it), and the admitted
request is the proxy's hottest path.

A connection is strict about reuse, because a connection that goes back to the pool
out of step with the origin hands one visitor's answer to another, or lets a
visitor's bytes become someone else's request. It is kept only when:

- the whole request was sent (a visitor who hangs up mid-body leaves the origin
  waiting for bytes: the next request would be read as that body);
- the whole answer was read with exact framing (llhttp refuses duplicate or invalid
  lengths, and a length beside chunked), and nothing came after it;
- no byte arrived while it sat idle, and it was no upgrade (101) or HEAD answer.

Anything else closes it. Exceptions::

    OriginError      the origin could not be reached, or broke the connection or HTTP
     ├── Aborted     we closed it ourselves: the visitor went away
     └── PoolBusy    every connection was in use for longer than the slot timeout
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import cast

import httptools

# Unread response bytes past which reading from the origin pauses (slow visitor).
_READ_AHEAD_LIMIT = 256 * 1024


class OriginError(Exception):
    """The origin could not be reached, or broke the connection or the protocol."""


class Aborted(OriginError):
    """The request was given up on our side (its visitor went away): never resent."""


class PoolBusy(OriginError):
    """No origin connection came free within the slot timeout."""


class _Stray(Exception):
    """Bytes after a complete answer: the origin is out of step with us."""


class OriginConnection(asyncio.Protocol):
    """One connection to the origin, one request at a time. After :meth:`head`,
    ``status`` and ``headers`` (names lower-cased) hold the answer; its body comes
    from :meth:`whole_body` once ``complete``, else from :meth:`body`."""

    # The current request's state (see reset):
    status: int
    headers: list[tuple[bytes, bytes]]
    head_complete: bool
    complete: bool
    keep_alive: bool
    answered: bool
    """Any byte of an answer arrived (a request that got none may be retried)."""
    no_body: bool
    """The request was a HEAD: the answer ends with its headers."""
    request_sent: bool
    """The whole request, body included, went out."""
    in_use: bool
    """Lent to a request (else idle in the pool, where any byte from the origin is a
    fault that closes it)."""

    def __init__(self, read_timeout: float,
                 on_lost: Callable[[OriginConnection], None]) -> None:
        self._read_timeout = read_timeout
        self._on_lost = on_lost
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._paused = False
        self._error: OriginError | None = None
        self.closed = False
        self.reset()

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to write requests to."""
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        """Parse what the origin sent; wake the request waiting for it. Bytes that are
        no part of the current answer close the connection."""
        if not self.in_use:  # nobody asked: never let it become the next answer
            self.close()
            return
        self.answered = True
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # any parser complaint, upgrade or stray bytes
            if self.complete:  # the answer is whole; only the connection is spoilt
                self.close()
            else:
                self._fail(OriginError(f"origin broke HTTP/1.1: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        """An answer without length ends here; any other unfinished one failed."""
        self.closed = True
        self._on_lost(self)
        if self.head_complete and not self._framed and not self.complete and (
                self._error is None):
            self.complete = True
            self._wake()
        elif not self.complete:
            self._fail(OriginError("origin closed the connection"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        """The origin reads a request body slower than the visitor sends it."""
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The origin caught up."""
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- httptools callbacks ----------------------------------------------------------

    def on_message_begin(self) -> None:
        """A new answer (after an interim 1xx one, start over); one after the final
        answer is stray."""
        if self.complete:
            raise _Stray
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        """One response header."""
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """The head of the answer arrived (interim 1xx answers are skipped)."""
        status = self._parser.get_status_code()
        if status == 101:  # the connection would stop being HTTP: nothing we forward
            self._error = OriginError("origin switched protocols (101)")
            raise self._error
        if status < 200:
            return
        self.status = status
        self.head_complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._framed = any(name in (b"content-length", b"transfer-encoding")
                           for name, _ in self.headers)
        if self.no_body:
            self.complete = True
            self.keep_alive = False  # the parser would take the next answer for a body
        self._wake()

    def on_body(self, body: bytes) -> None:
        """A piece of the body; reading pauses while too much is unread."""
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _READ_AHEAD_LIMIT and not self._paused and self._transport:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def on_message_complete(self) -> None:
        """The whole answer arrived."""
        if self.head_complete:
            self.complete = True
            self._wake()

    # -- the request ------------------------------------------------------------------

    async def send(self, head: bytes, body: AsyncIterator[bytes] | None, chunked: bool) -> None:
        """Write the request: ``head`` (request line and headers), then ``body``,
        chunk-encoded if ``chunked``."""
        transport = self._transport
        if transport is None or self.closed:
            raise OriginError("origin closed the connection")
        transport.write(head)
        if body is not None:
            async for piece in body:
                if self.head_complete:  # answered early: the rest is not wanted
                    return  # (and the connection, its request unfinished, not kept)
                if self.closed:
                    raise self._error or OriginError("origin closed the connection")
                if chunked:
                    transport.writelines((b"%x\r\n" % len(piece), piece, b"\r\n"))
                else:
                    transport.write(piece)
                if self._writable is not None:  # an origin that stops reading times out
                    async with asyncio.timeout(self._read_timeout):
                        await self._writable
            # ``body`` ends only when the visitor's body did, as whole as it said;
            # a visitor gone mid-body raises out of it instead.
            if chunked:
                transport.write(b"0\r\n\r\n")
        self.request_sent = True

    async def head(self) -> None:
        """Wait for the answer's status and headers."""
        while not self.head_complete:
            await self._wait()

    @property
    def reusable(self) -> bool:
        """May the next request go on this connection? Only if this exchange ended
        exactly: request sent whole, answer read whole, nothing else on the wire."""
        return (self.request_sent and self.complete and self.keep_alive
                and not self.closed and self._error is None)

    def whole_body(self) -> bytes:
        """The body of a ``complete`` answer."""
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= _READ_AHEAD_LIMIT and self._transport:
                    self._transport.resume_reading()
                    self._paused = False
                yield chunk
            if self.complete:
                return
            await self._wait()

    def reset(self) -> None:
        """Ready for the next request (the last answer was read to its end)."""
        self.status = 0
        self.headers = []
        self.head_complete = self.complete = self.keep_alive = False
        self.answered = self.no_body = self.request_sent = self.in_use = False
        self._framed = True
        self._chunks.clear()
        self._buffered = 0

    def close(self) -> None:
        """Drop the connection."""
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Give the request up (its visitor left): stop reading and close, failing
        whoever waits on the answer with :class:`Aborted`."""
        if not self.closed:
            self._fail(Aborted("the visitor went away"))

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._read_timeout, _time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: OriginError) -> None:
        self._error = self._error or error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(self._error)
        self.close()


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
