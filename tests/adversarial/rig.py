"""The rig for attacking the proxy: a raw-socket origin that misbehaves on command,
``waitingroom serve``'s app in front of it (under uvicorn, with the request-head
limits), and raw-socket visitors.

Every request carries a token (``x-token``) that the origin echoes in its answer,
so a visitor can tell an answer meant for somebody else. The origin parses like a
lenient old server (read the head, then exactly the body it declares), which is what
makes a desynchronised connection dangerous, and records what it read.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httptools
import httpx
import uvicorn

from tests.servers import is_arrival
from waitingroom.app import build_proxy_app
from waitingroom.proxy.proxy import OriginProxy
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import free_port
from waitingroom.web.asgi import is_room_header
from waitingroom.web.server import LimitedHttpToolsProtocol

TOKEN = re.compile(rb"tok-[0-9a-z]+")
STRAY = b"tok-stray"
"""The token in answers the origin sends nobody asked for."""
GATED = "/checkout"
ACTS = ("ok", "early", "extra", "short-length", "no-content-body", "switch", "drip",
        "slow", "close-mid", "chunked", "unframed", "signals")
"""What the origin may be told to do (the ``x-act`` header), in any crowd (``signals``:
an answer carrying the room's own headers, in every spelling). Also, for
tests that run visitors one after another: ``late-extra`` (a stray answer written
after a pause: no proxy can tell it from the next answer if it lands mid-exchange)
``endless`` (a body dripped until the connection breaks) and ``hold`` (an answer
that takes 2 s, to hold a connection while a test looks)."""

SIGNALS = (b"X-WaitingRoom-State: forged\r\nX_WaitingRoom_Session: forged\r\n"
           b"x-waitingroom-ignored: forged")
"""Headers an origin's answer may carry that no visitor may ever see (``forged``)."""
_STRAY_ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\nset-cookie: stolen=1\r\n\r\n"
                 + STRAY + b" 000000 ")


@dataclass
class Seen:
    """One request as the origin read it."""

    path: str
    session: str
    token: str
    act: str
    complete: bool | None = None
    """The whole body it declared arrived (None: not known yet)."""
    forged: bool = False
    """It carried one of the room's own headers the room did not set (any spelling)."""
    forwarded_for: str = ""
    """The X-Forwarded-For it was told."""


@dataclass
class MisbehavingOrigin:
    """Answers as each request's ``x-act`` says (see :data:`ACTS`)."""

    seen: list[Seen] = field(default_factory=list)
    busy: int = 0
    """Connections in the middle of a request or its answer."""
    changed: threading.Condition = field(default_factory=threading.Condition)
    stray_sent: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> asyncio.Server:
        """Listen on a free loopback port (:attr:`port`)."""
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def stop(self, server: asyncio.Server) -> None:
        """Stop listening and end every connection."""
        server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for _ in range(5):  # let the closed transports report their loss
            await asyncio.sleep(0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handle(reader, writer)
        finally:
            self.tasks.discard(task)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until either side closes it."""
        try:
            while True:
                try:
                    first = await reader.readexactly(1)  # idle until a request starts
                except asyncio.IncompleteReadError:
                    return
                self._busy(+1)
                try:
                    if not await self._serve(first, reader, writer):
                        return
                finally:
                    self._busy(-1)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            return
        finally:
            writer.close()

    async def _serve(self, first: bytes, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> bool:
        """Read one request and answer it; False if the connection is to end."""
        head = first + await reader.readuntil(b"\r\n\r\n")
        line, *lines = head.decode("latin-1").split("\r\n")[:-2]
        parts = line.split(" ")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
        act = headers.get("x-act", "ok")
        names = [h.partition(":")[0].strip().lower() for h in lines]
        seen = Seen(parts[1] if len(parts) > 1 else line, headers.get("x-waitingroom-session", ""),
                    headers.get("x-token", ""), act,
                    forged=names.count("x-waitingroom-session") > 1 or any(
                        is_room_header(n.encode()) and n != "x-waitingroom-session"
                        for n in names), forwarded_for=headers.get("x-forwarded-for", ""))
        self.seen.append(seen)
        if act == "early":  # answer before reading the body, as servers may (a 404, a
            # 413); then read it, as they do before the next request
            keep = await self._answer(writer, act, seen.token.encode())
            seen.complete = await _read_body(reader, headers)
            return keep and seen.complete
        seen.complete = await _read_body(reader, headers)
        return seen.complete and await self._answer(writer, act, seen.token.encode())

    def _busy(self, change: int) -> None:
        with self.changed:
            self.busy += change
            self.changed.notify_all()

    def wait_busy(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` connections are mid-request (True), or
        ``timeout`` passes."""
        with self.changed:
            return self.changed.wait_for(lambda: self.busy >= count, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is mid-request (True), or ``timeout`` passes."""
        with self.changed:
            return self.changed.wait_for(lambda: self.busy == 0, timeout)

    async def _answer(self, writer: asyncio.StreamWriter, act: str, token: bytes) -> bool:
        """Write the answer; False if the connection is to end after it."""
        body = b"answer " + token + b" "
        whole = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        if act in ("ok", "early"):
            writer.write(whole)
        elif act == "signals":  # the room's headers, to be read by it or dropped
            writer.write(whole.replace(b"\r\n\r\n", b"\r\n" + SIGNALS + b"\r\n", 1))
        elif act == "extra":
            writer.write(whole + _STRAY_ANSWER)
        elif act == "late-extra":
            writer.write(whole)
            await writer.drain()
            await asyncio.sleep(0.3)  # the connection is back in the pool by now
            writer.write(_STRAY_ANSWER)
            await writer.drain()
            self.stray_sent.set()
        elif act == "short-length":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s%s"
                         % (len(body), body, _STRAY_ANSWER))
        elif act == "no-content-body":
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n" + _STRAY_ANSWER)
        elif act == "switch":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                         b"connection: upgrade\r\n\r\n" + _STRAY_ANSWER)
        elif act == "drip":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (len(body) * 20))
            for _ in range(20):
                await asyncio.sleep(0.02)
                writer.write(body)
                await writer.drain()
        elif act == "endless":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n")
            for _ in range(3000):  # 30 s at most
                writer.write(body)
                await writer.drain()
                await asyncio.sleep(0.01)
            return False
        elif act in ("slow", "hold"):
            await asyncio.sleep(0.8 if act == "slow" else 2)
            writer.write(whole)
        elif act == "close-mid":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + body)
            await writer.drain()
            return False
        elif act == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:  # unframed: the answer ends when the connection does
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + body)
            await writer.drain()
            return False
        await writer.drain()
        return True


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bool:
    """Read the body the head declares; False if the connection ended first."""
    try:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await reader.readuntil(b"\r\n")).strip() or b"0", 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")
        elif headers.get("content-length", "").isdigit():
            await reader.readexactly(int(headers["content-length"]))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        return False
    return True


@dataclass
class Rig:
    """A running origin and proxy; ``passes`` are the cookies of admitted visitors."""

    origin: MisbehavingOrigin
    proxy: OriginProxy
    port: int
    passes: dict[str, str]
    """Session id -> the ``Cookie`` header value of an admitted visitor."""
    loop: asyncio.AbstractEventLoop

    def settle(self, timeout: float) -> bool:
        """Wait until nothing is in flight between proxy and origin, as seen from the
        rig's own loop after it has run a few turns (True), or ``timeout`` passes."""
        return self._wait_quiet(timeout, origin_too=True)

    def proxy_idle(self, timeout: float) -> bool:
        """Wait until the proxy has no origin connection lent to a request (True), or
        ``timeout`` passes (the origin may still be waiting on a request)."""
        return self._wait_quiet(timeout, origin_too=False)

    def _wait_quiet(self, timeout: float, *, origin_too: bool) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if origin_too and not self.origin.wait_idle(deadline - time.monotonic()):
                return False
            quiet = asyncio.run_coroutine_threadsafe(self._quiet(origin_too), self.loop)
            if quiet.result(timeout):
                return True
        return False

    async def _quiet(self, origin_too: bool) -> bool:
        for _ in range(10):  # bytes already written reach their reader within a few turns
            await asyncio.sleep(0)
        if self.proxy.busy_connections or (origin_too and self.origin.busy):
            await asyncio.sleep(0.01)
            return False
        return True


@contextmanager
def running_rig(settings: Settings, admitted: int) -> Iterator[Rig]:
    """Start the origin and the proxy on a loop of their own (a thread), and admit
    ``admitted`` visitors; ``settings`` say everything but ``origin``."""
    origin = MisbehavingOrigin()
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    ports: list[int] = []
    proxies: list[OriginProxy] = []

    async def main() -> None:
        server = await origin.start()
        app = build_proxy_app(settings.model_copy(update={"origin": f"http://127.0.0.1:{origin.port}"}))
        assert isinstance(app.app, OriginProxy)
        proxies.append(app.app)
        port = free_port()
        uv = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="critical", lifespan="on",
            http=LimitedHttpToolsProtocol.configured(settings), server_header=False,
            date_header=False, proxy_headers=bool(settings.forwarded_allow_ips)))  # as serve
        task = asyncio.create_task(uv.serve())
        while not uv.started:
            if task.done():
                task.result()  # raises the start-up error
            await asyncio.sleep(0.01)
        ports.append(port)
        stopping = asyncio.Event()
        stop.append(stopping)
        ready.set()
        await stopping.wait()
        uv.should_exit = True
        await task
        await origin.stop(server)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the rig did not start")
    port = ports[0]
    passes: dict[str, str] = {}
    try:
        for _ in range(admitted):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                for _ in range(2):  # a first visit, then again with its cookie
                    if not is_arrival(client.get(GATED + "/warm-up",
                                                 headers={"x-token": "tok-warmup"})):
                        break
                pass_cookie = client.cookies.get("wr_pass_default")
            assert pass_cookie, "the warm-up visitor was not admitted"
            session = next(s.session for s in reversed(origin.seen) if s.session)
            passes[session] = f"wr_pass_default={pass_cookie}"
        yield Rig(origin, proxies[0], port, passes, loop)
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(20)
        loop.close()


def answers_in(data: bytes) -> int:
    """How many whole HTTP answers ``data`` holds (parsed as a client would)."""

    class Count:
        complete = 0

        def on_message_complete(self) -> None:
            self.complete += 1

    count = Count()
    parser = httptools.HttpResponseParser(count)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError:
        pass
    except httptools.HttpParserUpgrade:
        pass
    return count.complete
