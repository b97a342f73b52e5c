"""A session of one request only ends after the short first idle (10 s); a second
request makes it a session like any, even when this process answers it from its
memory of live sessions (which asks Redis at most once a second)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.places import RoomClock
from tests.servers import Browser, Origin
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings

JSON = {"accept": "application/json"}


async def test_a_second_request_answered_from_memory_still_counts(
        make_settings: Callable[..., Settings]) -> None:
    room = WaitingRoomMiddleware(Origin(), settings=make_settings(capacity=1))
    transport = httpx.ASGITransport(app=room)
    try:
        clock = await RoomClock(room.engine, "default").start()
        async with Browser(transport=transport, base_url="http://shop.test") as shopper, \
                Browser(transport=transport, base_url="http://shop.test") as next_one:
            assert (await shopper.get("/checkout")).text == "origin:/checkout"
            assert (await shopper.get("/checkout/pay")).text == "origin:/checkout/pay"
            await room.rooms.default.room.sessions.keep_used_alive()  # the next tick
            await clock.advance(20)  # past the first idle, within the idle
            waiting = await next_one.get("/checkout", headers=JSON)
            assert waiting.json()["state"] == "queued"
    finally:
        await room.aclose()
