"""First come, first served through Redis outages, with real Redis processes killed,
restarted and rolled back: outage time counts against nobody, a pooled connection that
died with the old server costs no visitor a 503, a release Redis missed still lands,
a number Redis lost is never handed to somebody else, and a second join by the same
visitor takes no second place."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.places import Visitors, line_ids
from tests.servers import Browser, FaultyLink, Origin, eventually
from waitingroom.engine import HEARD_SLOTS, Engine, VisitState, connect, room_keys
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import RedisServer

ROOM = "outage"
JSON = {"accept": "application/json"}


def _engine(url: str, *, grace_seconds: int) -> Engine:
    return Engine(connect(url), grace_seconds=grace_seconds, session_idle_seconds=300,
                  session_max_seconds=1800)


@pytest.mark.slow
@pytest.mark.parametrize("outage_graces", [2, 10])
async def test_an_outage_longer_than_the_grace_keeps_the_next_in_line_first(
    outage_graces: int,
) -> None:
    grace = 2
    with RedisServer(appendfsync="always") as server:
        engine = _engine(server.url, grace_seconds=grace)
        line = Visitors(engine, ROOM)
        try:
            await engine.rooms.seed(ROOM, capacity=1)
            assert (await line.visit("A")).state is VisitState.ADMITTED
            assert (await line.visit("B")).position == 1
            assert (await line.visit("C")).position == 2
            await engine.release(ROOM, "A")  # B's slot is reserved for its next ask
            server.stop(kill=True)
            await asyncio.sleep(grace * outage_graces)  # the outage itself
            server.start()
            # C happens to ask first; B is still next, however long Redis was gone.
            c_after = await line.visit("C", join=False)
            b_after = await line.visit("B", join=False)
            assert (c_after.state, c_after.position) == (VisitState.WAITING, 1)
            assert b_after.state is VisitState.ADMITTED
        finally:
            await engine.aclose()


async def test_a_second_join_by_the_same_visitor_takes_no_second_place(
    engine: Engine,
) -> None:
    await engine.rooms.seed(ROOM, capacity=1)
    line = Visitors(engine, ROOM)
    assert (await line.visit("shopper")).state is VisitState.ADMITTED
    await line.visit("first")
    await engine.release(ROOM, "shopper")
    assert (await line.visit("first")).state is VisitState.ADMITTED
    # The session ended; two tabs come back at once, neither holding a ticket.
    tabs = await asyncio.gather(*(engine.visit(ROOM, "shopper") for _ in range(2)))
    assert [(t.state, t.position) for t in tabs] == [(VisitState.WAITING, 1)] * 2
    assert tabs[0].number == tabs[1].number
    # A retry whose reply was lost (no number yet) finds the same place, too.
    again = await engine.visit(ROOM, "shopper")
    assert (again.position, again.number) == (1, tabs[0].number)
    assert (await engine.visit(ROOM, "behind")).position == 2
    assert await line_ids(engine, ROOM) == ["shopper", "behind"]


@pytest.mark.usefixtures("redis_url")  # a flushed Redis
async def test_a_join_whose_reply_was_lost_takes_one_place(redis_server: RedisServer) -> None:
    async with FaultyLink(redis_server.port) as link:
        engine = _engine(link.url, grace_seconds=60)
        try:
            await engine.rooms.seed(ROOM, capacity=1)
            await engine.visit(ROOM, "shopper")
            link.lose_next_reply = True  # Redis runs the join; its answer never arrives
            joined = await engine.visit(ROOM, "newcomer", new=True)  # sent again
            assert not link.lose_next_reply  # the reply really was lost
            assert (joined.state, joined.position) == (VisitState.WAITING, 1)
            assert (await engine.visit(ROOM, "behind", new=True)).position == 2
            assert await line_ids(engine, ROOM) == ["newcomer", "behind"]
        finally:
            await engine.aclose()


@asynccontextmanager
async def shoppers(
    settings: Settings, count: int
) -> AsyncIterator[tuple[WaitingRoomMiddleware, list[httpx.AsyncClient]]]:
    """A waiting room with ``settings`` in front of the test origin, in this process,
    and ``count`` shoppers (cookie jars) of it."""
    room = WaitingRoomMiddleware(Origin(), settings=settings)
    transport = httpx.ASGITransport(app=room)
    clients = [Browser(transport=transport, base_url="http://shop.test",
                                 headers=JSON) for _ in range(count)]
    try:
        yield room, clients
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
        await room.aclose()


@pytest.mark.slow
async def test_a_redis_restart_under_load_costs_no_503_once_redis_is_back(
    make_settings: Callable[..., Settings],
) -> None:
    with RedisServer(appendfsync="always") as server:
        async with shoppers(make_settings(redis_url=server.url, capacity=5,
                                          gated_paths=("/checkout*",),
                                          new_places_per_minute_per_network=0),  # loopback
                            40) as (_, visitors):
            # Many connections in the pool, all of which die with the server.
            await asyncio.gather(*(v.get("/checkout") for v in visitors))
            before = await asyncio.gather(*(v.get("/_wr/status") for v in visitors))
            server.stop(kill=True)
            server.start()
            after = await asyncio.gather(*(v.get("/checkout") for v in visitors),
                                         *(v.get("/_wr/status") for v in visitors))
            assert [a.status_code for a in after if a.status_code >= 500] == []
            states = [a.json()["state"] for a in after[len(visitors):]]
            assert states == [b.json()["state"] for b in before]


@pytest.mark.slow
async def test_a_release_redis_missed_lands_once_redis_is_back(
    make_settings: Callable[..., Settings],
) -> None:
    with RedisServer(appendfsync="always") as server:
        settings = make_settings(redis_url=server.url, capacity=1, redis_down="passes",
                                 gated_paths=("/checkout*", "/done"))
        async with shoppers(settings, 2) as (_, (shopper, next_one)):
            assert (await shopper.get("/checkout")).text == "origin:/checkout"
            assert (await next_one.get("/checkout")).json()["position"] == 1
            server.stop(kill=True)
            # The order completes while Redis is down: the origin ends the session.
            assert (await shopper.get("/done")).text == "origin:/done"
            server.start()
            back = time.monotonic()
            while (await next_one.get("/_wr/status")).json()["state"] != "admitted":
                assert time.monotonic() - back < 5, "the missed release never landed"
                await asyncio.sleep(0.05)
            print(f"the missed release landed {time.monotonic() - back:.2f} s after Redis "
                  "returned")


async def test_a_number_redis_lost_is_never_handed_out_again() -> None:
    with RedisServer(appendfsync="always") as server:
        engine = _engine(server.url, grace_seconds=60)
        line = Visitors(engine, ROOM)
        try:
            await engine.rooms.seed(ROOM, capacity=1)
            for visitor in ("A", "B"):
                await line.visit(visitor)
            saved = server.directory.with_name(server.directory.name + "-saved")
            shutil.copytree(server.directory, saved)
            lost = await line.visit("C")  # told its place; the write is then lost
            assert lost.position == 2
            server.stop(kill=True)
            shutil.rmtree(server.directory)
            shutil.copytree(saved, server.directory)  # Redis comes back without C's join
            shutil.rmtree(saved)
            server.start()
            assert await line_ids(engine, ROOM) == ["B"]
            newcomer = await line.visit("D")
            assert newcomer.number != lost.number
            # C still has its ticket: it takes its own place back, ahead of D.
            assert (await line.visit("C", join=False)).position == 2
            assert (await line.visit("D", join=False)).position == 3
            assert await line_ids(engine, ROOM) == ["B", "C", "D"]
        finally:
            await engine.aclose()


async def test_waiters_a_cut_off_process_heard_are_handed_in_when_it_reconnects(
    redis_server: RedisServer, make_settings: Callable[..., Settings],
) -> None:
    async with FaultyLink(redis_server.port) as link, shoppers(make_settings(
            redis_url=link.url, capacity=1, gated_paths=("/checkout*",)), 2) as (
            room, (shopper, waiter)):
        keys = room_keys(room.settings.room)
        redis = room.engine.redis
        await shopper.get("/checkout")
        assert (await waiter.get("/checkout")).json()["position"] == 1
        number = int(await redis.get(keys.seq))
        heard_bitmaps = [f"{keys.heard}:{slot}:0" for slot in range(HEARD_SLOTS)]
        await redis.delete(*heard_bitmaps)  # as if the waiter was last heard long ago
        await link.sever()  # this process alone is cut off from Redis
        room.rooms.default.room.line.stale()  # its copy of the line is out of date
        assert (await waiter.get("/_wr/status")).status_code == 503
        link.restore()

        async def handed_in() -> bool:
            async with redis.pipeline(transaction=False) as pipe:
                for bitmap in heard_bitmaps:
                    pipe.getbit(bitmap, number)
                return any(await pipe.execute())

        await eventually(handed_in, "the waiter heard while cut off is handed in")
        assert (await waiter.get("/_wr/status")).json()["position"] == 1
