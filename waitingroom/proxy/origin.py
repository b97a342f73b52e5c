"""The pool of keep-alive connections to one origin (:mod:`waitingroom.proxy.origin_connection`
says when a connection may be reused)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

from waitingroom.proxy.origin_connection import Aborted, OriginConnection, OriginError, PoolBusy
from waitingroom.tls import tls_context


class OriginPool:
    """Keep-alive connections to the origin at ``origin`` (``http[s]://host[:port]``,
    any path is a prefix put before every request's), at most ``max_connections``
    at once; past that, requests wait up to ``slot_timeout`` seconds for one (then
    :class:`PoolBusy`). An https origin's certificate must be signed by an authority
    the system trusts or one in ``ca_file``."""

    def __init__(self, origin: str, *, connect_timeout: float, read_timeout: float,
                 max_connections: int, slot_timeout: float = 5.0, ca_file: str = "") -> None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self.prefix = parts.path.rstrip("/").encode()
        """Put before every request's path."""
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host_header = (f"[{self.host}]" if ":" in self.host else self.host).encode() + (
            b":%d" % parts.port if parts.port else b"")
        """The ``Host`` the origin is sent."""
        self._ssl = tls_context(ca_file) if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._slot_timeout = slot_timeout
        self._idle: list[OriginConnection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._open: set[OriginConnection] = set()

    @property
    def busy_connections(self) -> int:
        """Connections lent to a request now."""
        return len(self._open) - len(self._idle)

    async def request(self, head: bytes, body: AsyncIterator[bytes] | None, *,
                      chunked: bool = False, no_body: bool = False, safe: bool = False,
                      lent: Callable[[OriginConnection], None] | None = None,
                      ) -> OriginConnection:
        """Send a request (``head``: request line and headers, ending in a blank line)
        and wait for the answer's head. Hand the connection back with :meth:`release`.
        ``lent`` is told which connection carries the request, before it is sent (to
        :meth:`OriginConnection.abort` it if the visitor leaves). A ``safe`` request
        (GET, HEAD, OPTIONS: no harm done twice) whose kept connection turned out
        closed goes again on a new one. Raises :class:`OriginError` or ``TimeoutError``."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._slot_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolBusy("every origin connection is busy") from None
        else:
            await self._slots.acquire()
        try:
            while True:
                kept = self._kept()
                connection = kept or await self._connect()
                connection.no_body = no_body
                connection.in_use = True
                if lent is not None:
                    lent(connection)
                try:
                    await connection.send(head, body, chunked)
                    await connection.head()
                    return connection
                except (Aborted, PoolBusy):
                    connection.close()
                    raise
                except OriginError:
                    connection.close()
                    # A kept connection the origin closed as we sent, without a word:
                    # most likely it never read the request (its idle timeout), but
                    # only a safe one may be sent twice.
                    if not kept or not safe or body is not None or connection.answered:
                        raise
                except BaseException:
                    connection.close()
                    raise
        except BaseException:
            self._slots.release()
            raise

    def _kept(self) -> OriginConnection | None:
        """The most recently used kept connection still open, if any."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    def release(self, connection: OriginConnection) -> None:
        """Done with ``connection``: kept for the next request only if the exchange
        ended exactly (:attr:`OriginConnection.reusable`), else closed."""
        self._slots.release()
        if connection.reusable:
            connection.reset()
            self._idle.append(connection)
        else:
            connection.close()

    async def aclose(self) -> None:
        """Close the kept connections."""
        while self._idle:
            self._idle.pop().close()

    def _closed(self, connection: OriginConnection) -> None:
        self._open.discard(connection)
        if connection in self._idle:  # the origin closed a kept connection
            self._idle.remove(connection)

    async def _connect(self) -> OriginConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: OriginConnection(self._read_timeout, self._closed), self.host,
                    self.port, ssl=self._ssl)
        except OSError as exc:
            raise OriginError(f"cannot connect to the origin: {exc}") from exc
        if not connection.closed:
            self._open.add(connection)
        return connection
