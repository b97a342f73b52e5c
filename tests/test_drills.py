"""Fault drills with real parts: Redis behind a faulty link (slow, then stalled).
What the visitor sees, whether the cap held, whether anybody lost their place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from tests.servers import FaultyLink
from tests.test_middleware import Origin
from waitingroom._redis_server import RedisServer
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings

JSON = {"accept": "application/json"}


@pytest.mark.slow
async def test_slow_then_stalled_redis_costs_time_not_places_or_the_cap(
    redis_server: RedisServer, redis_url: str, make_settings: Callable[..., Settings],
) -> None:
    origin = Origin()
    async with FaultyLink(redis_server.port) as link:
        room = WaitingRoomMiddleware(origin, settings=make_settings(
            redis_url=link.url, capacity=3, gated_paths=("/checkout*",)))
        transport = httpx.ASGITransport(app=room)
        visitors = [httpx.AsyncClient(transport=transport, base_url="http://shop.test",
                                      headers=JSON) for _ in range(12)]
        try:
            # Slow: 50 ms each way on every Redis exchange. Everyone still gets an
            # answer, the cap holds and the places are exact.
            link.delay = 0.05
            answers = await asyncio.gather(*(v.get("/checkout") for v in visitors))
            assert all(a.status_code == 200 for a in answers)
            admitted = [a for a in answers if a.text == "origin:/checkout"]
            positions = sorted(a.json()["position"] for a in answers if a not in admitted)
            assert len(admitted) == 3 and positions == list(range(1, 10))
            assert len({session for _, session in origin.seen}) == 3
            before = {id(v): (await v.get("/_wr/status")).json() for v in visitors}

            # Stalled: Redis holds every byte. Visitors get the retry page (503), not
            # a hang and not a 500; nobody new reaches the origin.
            link.delay = 0.0
            link.flowing.clear()
            started = time.monotonic()
            stalled = await asyncio.wait_for(visitors[5].get("/checkout"), 60)
            print(f"stalled redis answered {stalled.status_code} after "
                  f"{time.monotonic() - started:.1f} s")
            assert stalled.status_code == 503 and stalled.headers["retry-after"] == "5"
            assert len(origin.seen) == 3

            # Flowing again: every place is where it was.
            link.flowing.set()
            after = {id(v): (await v.get("/_wr/status")).json() for v in visitors}
            assert after == before
        finally:
            await asyncio.gather(*(v.aclose() for v in visitors))
            await room.aclose()
