"""A scheduled start with a pre-queue: arrivals before the start are placed in random
order at the start, then it is first come, first served."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.places import Visitors
from tests.servers import Browser
from waitingroom.engine import Engine, VisitState, room_keys
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.tickets import new_visitor_id

ROOM = "launch"


async def server_ms(engine: Engine) -> int:
    seconds, micros = await engine.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_nobody_is_admitted_before_the_start_then_a_fair_draw(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=3)
    await engine.rooms.configure(ROOM, start_at_ms=await server_ms(engine) + 60_000)
    early = [new_visitor_id() for _ in range(200)]
    for visitor in early:
        visit = await line.visit(visitor)
        assert (visit.state, visit.position) == (VisitState.PREQUEUE, 0)
    assert (await engine.rooms.counts(ROOM)).active == 0  # capacity free, but not yet
    gone = early[17]
    await engine.redis.zadd(room_keys(ROOM).seen, {gone: 0})  # walked away before the start

    await engine.rooms.configure(ROOM, start_at_ms=await server_ms(engine) - 1)  # it starts
    latecomer = await line.visit("latecomer00")
    assert (latecomer.state, latecomer.position) == (VisitState.WAITING, 199 - 3 + 1)
    visits = {v: await line.visit(v, join=False) for v in early}
    assert visits[gone].state is VisitState.NO_PLACE
    stayed = [v for v in early if v != gone]
    # The draw orders the pre-queue by its random ids: a fair shuffle, not arrival order.
    drawn = sorted(stayed)
    assert drawn != stayed
    admitted = {v for v in stayed if visits[v].state is VisitState.ADMITTED}
    assert admitted == set(drawn[:3])  # the first three drawn walk in
    assert [visits[v].position for v in drawn[3:]] == list(range(1, 197))


async def test_visitors_are_told_when_it_starts(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capacity=5)
    await room.engine.rooms.seed("default", capacity=5)
    start = await server_ms(room.engine) + 120_000
    await room.engine.rooms.configure("default", start_at_ms=start)
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as c:
        status = (await c.get("/_wr/status")).json()
        assert status["state"] == "prequeue" and status["position"] is None
        assert 100 <= status["eta_seconds"] <= 120
        page = await c.get("/checkout")
        assert "places are drawn" in page.text or "random order" in page.text
        assert "origin" not in page.text
        words = (await c.get("/_wr/status-page.json")).json()
        assert words["state"] == "scheduled"
