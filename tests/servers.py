"""Real servers on loopback for end-to-end tests: in-process uvicorn and subprocesses,
the test origin, and the ops side driving them (the admin CLI, waiting for a change
to reach every process)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import TOKEN
from waitingroom.tools.local_server import serve_in_process as serve_in_process  # re-exported
from waitingroom.tools.redis_server import free_port


@contextmanager
def waitingroom_serve(
    env: Mapping[str, str], *args: str, started: list[subprocess.Popen[bytes]] | None = None
) -> Iterator[str]:
    """Run ``waitingroom serve`` as a separate process; yield its base URL once healthy
    (and add the process to ``started``, for drills that kill it)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "waitingroom.cli", "serve", "--port", str(port), *args],
        env={**os.environ, **env}, stderr=subprocess.PIPE,
    )
    if started is not None:
        started.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"waitingroom serve exited: {process.stderr.read().decode()}")
            try:
                if httpx.get(url + "/_wr/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("waitingroom serve did not become healthy")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


async def read_body(receive: Receive) -> bytes:
    """The whole request body an ASGI app receives."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


class FaultyLink:
    """A TCP proxy on loopback in front of a server, for fault drills: it can add a
    delay to every chunk in either direction, stall (hold every byte) until released,
    be cut (every connection reset, new ones refused) until restored, or lose the next
    reply (the request reaches the server; the connection breaks before its answer
    comes back). Use as
    ``async with FaultyLink(port) as link: link.url``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.delay = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = free_port()
        self.cut = False
        self.lose_next_reply = False
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """A redis:// URL through the link."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def __aenter__(self) -> FaultyLink:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._drop_all()

    async def sever(self) -> None:
        """Cut the link: reset every connection and refuse new ones until restored."""
        self.cut = True
        await self._drop_all()

    async def _drop_all(self) -> None:
        """Stop every pipe and close both ends of every connection (a pipe cancelled
        before it ran would otherwise leave its socket open)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        """Accept connections again after :meth:`sever`."""
        self.cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        self._writers.add(writer)
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port)
        self._writers.add(upstream_writer)
        for source, sink, replies in ((reader, upstream_writer, False),
                                      (upstream_reader, writer, True)):
            task = asyncio.create_task(self._pipe(source, sink, replies=replies))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *,
                    replies: bool) -> None:
        try:
            while chunk := await source.read(65536):
                await self.flowing.wait()
                if replies and self.lose_next_reply:
                    self.lose_next_reply = False
                    return  # the answer is dropped and the connection closed
                if self.delay:
                    await asyncio.sleep(self.delay)  # the fault being simulated
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()


def is_arrival(response: httpx.Response) -> bool:
    """Is ``response`` the room's answer to a first visit (no place until the client
    asks again with the cookie it was given)?"""
    if response.headers.get("x-waitingroom-state") == "arriving":
        return True
    return (response.headers.get("content-type", "").startswith("application/json")
            and b'"state":"arriving"' in response.content)


def _again(client: httpx.Client | httpx.AsyncClient, request: httpx.Request) -> httpx.Request:
    """``request`` once more, with the cookies the client holds now."""
    again = httpx.Request(request.method, request.url, content=request.content,
                          headers=[(k, v) for k, v in request.headers.raw
                                   if k.lower() != b"cookie"])
    client.cookies.set_cookie_header(again)
    return again


class Browser(httpx.AsyncClient):
    """A client that keeps cookies and, as a browser on the arrival page does
    (``arrive.js``), asks again at once when the room answers a first visit."""

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await super().send(request, **kwargs)
        if not kwargs.get("stream") and is_arrival(response):
            response = await super().send(_again(self, request), **kwargs)
        return response


def in_process(app: ASGIApp, *, address: tuple[str, int] | None = None,
               host: str = "shop.test", browser: bool = True, **kwargs: Any) -> httpx.AsyncClient:
    """A client of ``app`` in this process (no server), from ``address`` if given: a
    :class:`Browser` (cookies kept, first visits asked again), or, not ``browser``, a
    plain client that does neither of its own accord."""
    transport = httpx.ASGITransport(app=app, **({"client": address} if address else {}))
    kind = Browser if browser else httpx.AsyncClient
    return kind(transport=transport, base_url=f"http://{host}", **kwargs)


class SyncBrowser(httpx.Client):
    """:class:`Browser`, blocking."""

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = super().send(request, **kwargs)
        if not kwargs.get("stream") and is_arrival(response):
            response = super().send(_again(self, request), **kwargs)
        return response


class Mailbox:
    """An SMTP server's handler (for aiosmtpd): keeps every message; ``arrived`` is set
    on each."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        self.arrived.set()
        return "250 OK"


class Origin:
    """Records what reaches it; ``/done`` ends the session like a finished order, and
    ``…/buy`` does so selling one unit; ``…/stock/<n>`` reports ``n`` units left."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        session = headers.get(b"x-waitingroom-session")
        self.seen.append((scope["path"], session.decode() if session else None))
        path: str = scope["path"]
        extra = [(b"x-waitingroom-release", b"1")] if path in ("/done", "/checkout/buy") else []
        if path == "/checkout/buy":
            extra.append((b"x-waitingroom-sold", b"1"))
        if path.startswith("/checkout/stock/"):
            extra.append((b"X-WaitingRoom-Stock", path.rpartition("/")[2].encode()))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), *extra]})
        await send({"type": "http.response.body", "body": b"origin:" + scope["path"].encode()})


def admin(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``waitingroom admin`` as a script runs it: no terminal (stdin not the one pytest
    was started from, where a change would ask first and wait), its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "waitingroom.cli", "admin", "--url", url, *args],
        env={**os.environ, "WAITINGROOM_ADMIN_TOKEN": TOKEN}, capture_output=True, text=True,
        timeout=30, stdin=subprocess.DEVNULL)


def cli(url: str, *args: str) -> dict[str, Any]:
    """``waitingroom admin ... --json``, which must succeed: its answer."""
    result = admin(url, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def eventually(check: Callable[[], Any], what: str, within: float = 1.5) -> None:
    """``check()`` comes true within ``within`` seconds (by default about a second:
    each process re-reads the room config every second)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def ops_and_shop(
    room_env: dict[str, str], visitors: int
) -> AsyncIterator[tuple[str, str, list[httpx.AsyncClient]]]:
    """Two ``serve`` processes (ops use one, shoppers the other) in front of the test
    origin: yields both URLs and ``visitors`` shopper clients."""
    async with serve_in_process(Origin()) as origin_url:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin_url}
        with waitingroom_serve(env) as ops_url, waitingroom_serve(env) as shop_url:
            # Plain HTTP on loopback: no CA bundle to load (40 ms each, blocking the loop).
            clients = [Browser(base_url=shop_url, verify=False)
                       for _ in range(visitors)]
            try:
                yield ops_url, shop_url, clients
            finally:
                await asyncio.gather(*(c.aclose() for c in clients))
