"""A session of one request only ends after the short first idle (10 s); a second
request makes it a session like any, even when this process answers it from its
memory of live sessions (which asks Redis at most once a second)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from starlette.types import Receive, Scope, Send

from tests.places import RoomClock
from tests.servers import Browser
from waitingroom.middleware import WaitingRoomMiddleware

JSON = {"accept": "application/json"}


async def test_a_second_request_answered_from_memory_still_counts(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    room = make_room(capacity=1)
    transport = httpx.ASGITransport(app=room)
    clock = await RoomClock(room.engine, "default").start()
    async with Browser(transport=transport, base_url="http://shop.test") as shopper, \
            Browser(transport=transport, base_url="http://shop.test") as next_one:
        assert (await shopper.get("/checkout")).text == "origin:/checkout"
        assert (await shopper.get("/checkout/pay")).text == "origin:/checkout/pay"
        await room.rooms.default.room.sessions.keep_used_alive()  # the next tick
        await clock.advance(20)  # past the first idle, within the idle
        waiting = await next_one.get("/checkout", headers=JSON)
        assert waiting.json()["state"] == "queued"


async def test_a_first_page_slower_than_the_first_idle_keeps_its_session(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    """The first idle counts from the first page's answer, not its request: a slow
    origin does not end a session while its page is on its way."""
    arrived, slow = asyncio.Event(), asyncio.Event()

    async def origin(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/checkout/slow":
            arrived.set()
            await slow.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"origin"})

    room = make_room(origin, capacity=1)
    sessions = room.rooms.default.room.sessions
    transport = httpx.ASGITransport(app=room)
    clock = await RoomClock(room.engine, "default").start()
    async with Browser(transport=transport, base_url="http://shop.test") as shopper, \
            Browser(transport=transport, base_url="http://shop.test") as next_one:
        page = asyncio.create_task(shopper.get("/checkout/slow"))
        await arrived.wait()  # the session began; its first page is on its way
        for _ in range(3):  # 24 s on its way: ticks hold it meanwhile
            await clock.advance(8)
            await sessions.keep_used_alive()
        slow.set()
        assert (await page).text == "origin"
        await sessions.keep_used_alive()  # the tick after the answer
        await clock.advance(8)  # within the first idle, counted from the answer
        waiting = await next_one.get("/checkout", headers=JSON)
        assert waiting.json()["state"] == "queued"
