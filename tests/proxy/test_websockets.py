"""WebSockets through ``waitingroom serve`` and through the middleware: gated until
admitted, frames both ways, closed when the session ends, bounded per session, and
nothing left behind after 1,000 connections."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.servers import (
    Browser,
    FaultyLink,
    Origin,
    eventually,
    serve_in_process,
    waitingroom_serve,
)
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.proxy.websocket import MAX_MESSAGE_BYTES
from waitingroom.tools.redis_server import RedisServer


class SocketOrigin(Origin):
    """The test origin, plus a WebSocket at any path that greets the session it was
    given and echoes every frame; ``open`` counts its connections still open."""

    def __init__(self) -> None:
        super().__init__()
        self.open = 0
        self.largest = 0  # the largest message received, in bytes
        self._went = asyncio.Condition()

    async def down_to(self, count: int) -> None:
        """Wait (10 s at most) until at most ``count`` of its sockets are open."""
        async with self._went:
            await asyncio.wait_for(self._went.wait_for(lambda: self.open <= count), 10)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await super().__call__(scope, receive, send)
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        self.open += 1
        try:
            session = dict(scope["headers"]).get(b"x-waitingroom-session", b"-").decode()
            await send({"type": "websocket.send", "text": f"hello {scope['path']} {session}"})
            while (message := await receive())["type"] == "websocket.receive":
                self.largest = max(self.largest, len(message.get("bytes") or b""))
                await send({"type": "websocket.send", **{
                    k: message[k] for k in ("text", "bytes") if message.get(k) is not None}})
        finally:
            self.open -= 1
            async with self._went:
                self._went.notify_all()


def ws_url(url: str, path: str) -> str:
    return url.replace("http://", "ws://") + path


@asynccontextmanager
async def socket(url: str, path: str, client: httpx.AsyncClient) -> AsyncIterator[
        ClientConnection]:
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    async with connect(ws_url(url, path), additional_headers={"Cookie": cookies},
                       open_timeout=10, close_timeout=5) as ws:
        yield ws


async def frames_both_ways_and_closed_at_session_end(url: str, origin: SocketOrigin) -> None:
    async with Browser(base_url=url) as shopper, \
            Browser(base_url=url) as waiter:
        assert (await shopper.get("/checkout")).text == "origin:/checkout"  # in (capacity 1)
        await waiter.get("/checkout")  # in line
        with pytest.raises(InvalidStatus):  # gated: no socket before admission
            async with socket(url, "/checkout/live", waiter):
                pass
        async with socket(url, "/checkout/live", shopper) as ws:
            greeting = await ws.recv()
            assert greeting.startswith("hello /checkout/live ")
            assert greeting != "hello /checkout/live -"  # a session was named
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await ws.send(b"\x00\x01binary")
            assert await ws.recv() == b"\x00\x01binary"
            assert (await shopper.get("/done")).text == "origin:/done"  # the session ends
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        async with socket(url, "/feed", waiter) as ws:  # an open path needs no admission
            assert (await ws.recv()).startswith("hello /feed")

        async def origin_side_closed() -> bool:
            return origin.open == 0
        await eventually(origin_side_closed, "the origin's sockets closed", within=10)


async def test_websockets_through_serve(room_env: dict[str, str]) -> None:
    origin = SocketOrigin()
    async with serve_in_process(origin) as origin_url:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin_url}
        with waitingroom_serve(env) as url:
            await frames_both_ways_and_closed_at_session_end(url, origin)


async def test_websockets_through_the_middleware(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    origin = SocketOrigin()
    room = make_room(origin, capacity=1, gated_paths=("/checkout*", "/done"))
    async with serve_in_process(room) as url:
        await frames_both_ways_and_closed_at_session_end(url, origin)


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.serial  # it counts the process's open files: alone, before the parallel lane
async def test_sockets_are_bounded_per_session_and_1000_leave_nothing_behind(
    room_env: dict[str, str],
) -> None:
    origin = SocketOrigin()
    started: list = []
    async with serve_in_process(origin) as origin_url:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin_url,
               "WAITINGROOM_SESSION_MAX_WEBSOCKETS": "8"}
        with waitingroom_serve(env, started=started) as url:
            async with Browser(base_url=url) as shopper:
                await shopper.get("/checkout")
                async with socket(url, "/checkout/a", shopper) as first:
                    await first.recv()
                    baseline = open_files(started[0].pid)
                    async with AsyncExitStack() as holding:
                        for _ in range(7):  # eight open: the limit
                            ws = await holding.enter_async_context(
                                socket(url, "/checkout/b", shopper))
                            await ws.recv()
                        with pytest.raises(InvalidStatus):  # the ninth is refused
                            async with socket(url, "/checkout/c", shopper):
                                pass

                    async def one(n: int) -> None:
                        async with socket(url, f"/checkout/{n}", shopper) as ws:
                            await ws.recv()
                            await ws.send(str(n))
                            assert await ws.recv() == str(n)

                    # Within the limit beside `first`. A socket the visitor has closed
                    # is let go once the server has wound it down, a moment after the
                    # visitor sees the close: each batch waits for the origin to see
                    # its sockets go, and leaves two places spare for that moment (one
                    # was not always enough while the machine was busy).
                    for batch in range(0, 1000, 5):
                        await asyncio.gather(*(one(n) for n in range(batch, min(batch + 5,
                                                                                  1000))))
                        await origin.down_to(1)

                    async def back_to_baseline() -> bool:
                        return open_files(started[0].pid) <= baseline + 2 and origin.open == 1
                    await eventually(back_to_baseline, "no socket left open", within=15)
                    await first.send("still here")
                    assert await first.recv() == "still here"


async def test_frames_keep_the_session_alive_and_silence_lets_it_end(
    room_env: dict[str, str],
) -> None:
    origin = SocketOrigin()
    async with serve_in_process(origin) as origin_url:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin_url,
               "WAITINGROOM_SESSION_IDLE_SECONDS": "3"}
        with waitingroom_serve(env) as url:
            async with Browser(base_url=url) as shopper:
                await shopper.get("/checkout")
                async with socket(url, "/checkout/live", shopper) as ws:
                    await ws.recv()
                    for n in range(8):  # 8 s of frames, no HTTP: more than twice the idle
                        await ws.send(str(n))
                        assert await ws.recv() == str(n)
                        await asyncio.sleep(1)  # a chat's pace, not synchronisation
                    assert (await shopper.get("/checkout")).text == "origin:/checkout"
                    with pytest.raises(ConnectionClosed) as closed:  # then silence
                        await asyncio.wait_for(ws.recv(), 15)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_a_message_over_the_limit_closes_the_socket_and_never_reaches_the_origin(
    room_env: dict[str, str],
) -> None:
    origin = SocketOrigin()
    async with serve_in_process(origin) as origin_url:
        with waitingroom_serve({**room_env, "WAITINGROOM_ORIGIN": origin_url}) as url:
            async with Browser(base_url=url) as shopper:
                await shopper.get("/checkout")
                cookies = "; ".join(f"{k}={v}" for k, v in shopper.cookies.items())
                async with connect(ws_url(url, "/checkout/live"), max_size=None,
                                   additional_headers={"Cookie": cookies}) as ws:
                    await ws.recv()
                    await ws.send(b"x" * (MAX_MESSAGE_BYTES + 1))
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 10)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert origin.largest == 0  # refused by serve, not passed on


@pytest.mark.parametrize("redis_down", ["closed", "passes"])
async def test_with_redis_away_a_socket_follows_redis_down(
    redis_server: RedisServer, make_room: Callable[..., WaitingRoomMiddleware], redis_down: str,
) -> None:
    """Redis cut while a socket is open: ``closed`` closes it (1013, try again later),
    as requests get the retry page; ``passes`` keeps it, frames and all."""
    origin = SocketOrigin()
    async with FaultyLink(redis_server.port) as link:
        room = make_room(origin, redis_url=link.url, capacity=1, redis_down=redis_down)
        try:
            async with serve_in_process(room) as url, Browser(base_url=url) as shopper:
                await shopper.get("/checkout")
                async with socket(url, "/checkout/live", shopper) as ws:
                    await ws.recv()
                    await link.sever()
                    if redis_down == "closed":
                        with pytest.raises(ConnectionClosed) as closed:
                            await asyncio.wait_for(ws.recv(), 20)
                        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
                    else:
                        for n in range(4):  # beyond two session checks: still open
                            await asyncio.sleep(1.5)  # the checks' pace, not synchronisation
                            await ws.send(str(n))
                            assert await ws.recv() == str(n)
                    link.restore()
        finally:
            await room.aclose()
