"""A streaming reverse proxy as an ASGI app: forwards every request to one origin.

Requests go over pooled keep-alive HTTP/1.1 connections (:mod:`waitingroom.proxy.origin`), which are
reused only after an exchange that ended exactly. Bodies stream both ways; hop-by-hop
headers are dropped; ``X-Forwarded-For/Proto/Host`` are set; the origin's compression
passes through untouched. Bounded on every side: a body larger than
``max_body_bytes`` gets a 413, a visitor who stops sending one a 400, no free origin
connection within ``slot_timeout`` a 503, an origin that is down, breaks the protocol
or is too slow a 502/504. A visitor who hangs up has their origin connection closed:
no answer is read for nobody, and no half-sent request is ever finished for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from waitingroom.proxy.headers import RequestHead, request_head, response_headers
from waitingroom.proxy.origin import OriginPool
from waitingroom.proxy.origin_connection import Aborted, OriginConnection, OriginError, PoolBusy
from waitingroom.proxy.websocket import OriginSockets
from waitingroom.web.asgi import BodyTooLarge, ClientGone
from waitingroom.web.limits import KeyedSlots, RateLimit, Slots, network_of

logger = logging.getLogger("waitingroom.proxy")

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WATCH_AFTER_SECONDS = 0.5
"""An answer slower than this (give or take half) starts watching for the visitor
hanging up."""
BUFFERED_BODY_BYTES = 64 * 1024
"""A body of at most this many bytes (a form, a JSON call), chunked or not, is read
whole before an origin connection is taken: a visitor who sends it slowly holds none
meanwhile. A longer one (an upload) is streamed, and needs one of a few slots."""
STREAMED_SHARE = 10
"""At most this fraction (a tenth) of the origin pool's connections carry streamed
uploads at once (8 at least): uploads sent at a crawl cannot take the pool."""
NETWORK_SHARE = 5
"""One client network may have at most this fraction (a fifth) of the origin pool's
exchanges in flight at once (its bodies being read included), and never fewer than
:data:`NETWORK_FLOOR`: no address can starve the admitted shoppers of connections."""
NETWORK_FLOOR = 32


class OriginProxy:
    """Forward HTTP requests to ``origin`` (``http[s]://host:port[/prefix]``; an https
    origin's certificate may also be signed by an authority in ``ca_file``), over at
    most ``max_connections`` connections; request bodies up to ``max_body_bytes``."""

    def __init__(
        self,
        origin: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_connections: int = 1000,
        slot_timeout: float = 5.0,
        max_body_bytes: int = 10 * 1024 * 1024,
        ca_file: str = "",
        trust_forwarded_for: bool = False,
    ) -> None:
        self._pool = OriginPool(origin.rstrip("/"), connect_timeout=connect_timeout,
                                read_timeout=read_timeout, max_connections=max_connections,
                                slot_timeout=slot_timeout, ca_file=ca_file)
        self._read_timeout = read_timeout
        self._max_body_bytes = max_body_bytes
        self._streams = Slots(max(8, max_connections // STREAMED_SHARE))
        """Streamed uploads (bodies over :data:`BUFFERED_BODY_BYTES`) in flight."""
        self._in_flight = KeyedSlots(max(NETWORK_FLOOR, max_connections // NETWORK_SHARE))
        """Exchanges and sockets in flight per client network."""
        self._refused_networks = RateLimit(1)
        self._trust_forwarded_for = trust_forwarded_for
        """Pass on the X-Forwarded-For a client sent (a trusted load balancer's), or
        only the address it connected from (a visitor's own is not believed)."""
        self._sockets = OriginSockets(origin.rstrip("/"), connect_timeout=connect_timeout,
                                      ca_file=ca_file, trust_forwarded_for=trust_forwarded_for)
        self._awaiting: set[_VisitorWatch] = set()
        """Exchanges awaiting the origin's answer whose visitor is not watched yet."""
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def busy_connections(self) -> int:
        """Origin connections carrying a request now."""
        return self._pool.busy_connections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)
        elif scope["type"] == "websocket":
            network = self._take_network(scope)
            if network is None:
                await send({"type": "websocket.close", "code": 1013})  # try again later
                return
            try:
                await self._sockets.forward(scope, receive, send)
            finally:
                self._in_flight.give(network)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_head(scope, self._pool, self._trust_forwarded_for)
        if request is None:
            await _plain(400, b"Bad request.\n")(scope, receive, send)
            return
        if request.length is not None and request.length > self._max_body_bytes:
            await _plain(413, b"The request is too large.\n")(scope, receive, send)
            return
        network = self._take_network(scope)
        if network is None:
            await _origin_failed(PoolBusy("the network's share"))[1](scope, receive, send)
            return
        try:
            await self._exchange(scope, receive, send, request)
        finally:
            self._in_flight.give(network)

    def _take_network(self, scope: Scope) -> str | None:
        """Count an exchange or a socket against its client network's share; None if
        that network has its share in flight already."""
        client = scope.get("client")
        network = network_of(str(client[0])) if client else ""
        if self._in_flight.take(network):
            return network
        if self._refused_networks.allow(network):  # said once a minute, not per refusal
            logger.warning("network %s has %d exchanges in flight: refused", network,
                           self._in_flight.size)
        return None

    async def _exchange(self, scope: Scope, receive: Receive, send: Send,
                        request: RequestHead) -> None:
        pool = self._pool
        method: str = scope["method"]
        watch = _VisitorWatch(receive)
        body = self._body(receive, watch, request.length) if request.has_body else None
        if body is None:
            self._watch_soon(watch)
        streaming = False
        try:
            try:
                if body is not None:  # what a slow sender sends holds no origin connection
                    body, whole = await _buffered(body)
                    if not whole and not self._streams.take():
                        raise PoolBusy("every slot for streamed uploads is taken")
                    streaming = not whole
                origin = await pool.request(request.head, body, chunked=request.chunked,
                                            no_body=method == "HEAD",
                                            safe=method in _SAFE_METHODS, lent=watch.lend)
            except Aborted:
                return  # the visitor left: nobody to answer
            except (ClientGone, BodyTooLarge) as exc:
                too_large = isinstance(exc, BodyTooLarge)
                await _plain(413 if too_large else 400, b"The request is too large.\n"
                             if too_large else b"The request did not arrive completely.\n",
                             close=True)(scope, receive, send)
                return
            except (TimeoutError, OriginError) as exc:
                reason, answer = _origin_failed(exc)
                logger.warning("origin %s for %s %s: %r", reason, method, scope["path"], exc)
                await answer(scope, receive, send)
                return
            try:
                await send({"type": "http.response.start", "status": origin.status,
                            "headers": response_headers(origin.headers)})
                if origin.complete:  # arrived with its head: one message
                    await send({"type": "http.response.body", "body": origin.whole_body()})
                    return
                if not watch.since:  # answered before the visitor's body was all in
                    self._watch_soon(watch)
                # Mid-body failures propagate: the visitor's connection must be cut.
                async for chunk in origin.body():
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except Aborted:
                pass  # the visitor hung up mid-answer; the origin connection is closed
            finally:
                pool.release(origin)
        finally:
            if streaming:
                self._streams.give()
            self._awaiting.discard(watch)
            watch.stop()

    def _watch_soon(self, watch: _VisitorWatch) -> None:
        """Watch ``watch``'s visitor if the exchange lasts longer than
        :data:`_WATCH_AFTER_SECONDS` from now: most end sooner, and then no watching
        task (nor even a timer) is made for them."""
        watch.since = time.monotonic()
        self._awaiting.add(watch)
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())

    async def _sweep(self) -> None:
        """While any exchange awaits its answer: start watching the visitors of those
        that have waited long enough."""
        try:
            while self._awaiting:
                await asyncio.sleep(_WATCH_AFTER_SECONDS / 2)
                waited = time.monotonic() - _WATCH_AFTER_SECONDS
                for watch in [w for w in self._awaiting if w.since <= waited]:
                    self._awaiting.discard(watch)
                    watch.start()
        finally:
            self._sweeper = None

    async def _body(self, receive: Receive, watch: _VisitorWatch,
                    length: int | None) -> AsyncIterator[bytes]:
        """The visitor's body as it arrives; raises :class:`ClientGone` if it stops
        short of what was declared (a hang-up, or nothing for ``read_timeout``) and
        :class:`BodyTooLarge` past the limit. Only a body that ended as whole as it
        said ends this iterator; the visitor is watched from then on."""
        received = 0
        while True:
            try:
                async with asyncio.timeout(self._read_timeout):
                    message = await receive()
            except TimeoutError:
                raise ClientGone from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            received += len(chunk)
            if received > self._max_body_bytes or (length is not None and received > length):
                raise BodyTooLarge
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                if length is not None and received != length:
                    raise ClientGone
                self._watch_soon(watch)
                return

    async def aclose(self) -> None:
        """Close pooled origin connections."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self._pool.aclose()
        await self._sockets.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _VisitorWatch:
    """Aborts a request's origin exchange when its visitor hangs up, so that no origin
    connection outlives its visitor. Started for exchanges that last (a slow answer, a
    long stream: see :meth:`OriginProxy._watch_soon`), once the visitor's body is in."""

    __slots__ = ("_connection", "_receive", "_task", "since")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._connection: OriginConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.since = 0.0
        """When the exchange began to await its answer (monotonic seconds)."""

    def lend(self, connection: OriginConnection) -> None:
        """The connection carrying the request (to abort if the visitor leaves)."""
        self._connection = connection

    def start(self) -> None:
        """Watch from now on (once)."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        if self._connection is not None:
            self._connection.abort()

    def stop(self) -> None:
        """The exchange is over: stop watching."""
        if self._task is not None:
            self._task.cancel()


async def _buffered(body: AsyncIterator[bytes]) -> tuple[AsyncIterator[bytes], bool]:
    """``body`` read up to :data:`BUFFERED_BODY_BYTES`: as the pool takes one, and
    whether it is whole (else the rest follows as it arrives)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in body:
        chunks.append(chunk)
        size += len(chunk)
        if size > BUFFERED_BODY_BYTES:
            return _replay(chunks, body), False
    return _replay(chunks), True


async def _replay(chunks: list[bytes], rest: AsyncIterator[bytes] | None = None
                  ) -> AsyncIterator[bytes]:
    """A body's chunks already read, then ``rest`` as it arrives."""
    for chunk in chunks:
        yield chunk
    if rest is not None:
        async for chunk in rest:
            yield chunk


def _plain(status: int, text: bytes, *, close: bool = False) -> Response:
    headers = {"connection": "close"} if close else None
    return Response(text, status, headers=headers, media_type="text/plain")


def _origin_failed(exc: Exception) -> tuple[str, Response]:
    """What went wrong (for the log) and the visitor's answer, when the origin could
    not give one."""
    if isinstance(exc, PoolBusy):
        reason, status, text = "busy", 503, b"The shop is very busy right now."
    elif isinstance(exc, TimeoutError):
        reason, status, text = "timed out", 504, b"The shop did not answer in time."
    else:
        reason, status, text = "failed", 502, b"The shop is not answering."
    return reason, Response(text + b" Please try again.\n", status, media_type="text/plain",
                            headers={"retry-after": "5"})
