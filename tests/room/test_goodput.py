"""Every free slot filled at once, and only for visitors who are here: admission is
pushed to the waiter's event stream, a slot held for a visitor who does not come goes
on within the claim window (the visitor keeps its turn), first come first served
among those present, and sessions whose shopper left end sooner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.places import RoomClock, Visitors
from tests.servers import Browser, serve_in_process
from waitingroom.door import standing
from waitingroom.engine import Engine, VisitState, connect, room_keys
from waitingroom.engine.keys import room_ms
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import RedisServer
from waitingroom.visitor import beacons

ROOM = "goodput"
CLAIM_WINDOW = 5  # seconds: a twelfth of the default 60 s grace
ADMITTED, WAITING = VisitState.ADMITTED, VisitState.WAITING


async def _held(engine: Engine, room: str = ROOM) -> list[str]:
    """Ids holding a slot (a session or a slot held for a visitor on the way)."""
    return sorted(i.decode() for i in await engine.redis.zrange(room_keys(room).active, 0, -1))


async def state(line: Visitors, visitor: str) -> VisitState:
    """Where ``visitor`` stands when its page asks again."""
    return (await line.visit(visitor, join=False)).state


@pytest.fixture
async def room_on_a_clock(engine: Engine) -> AsyncIterator[tuple[Visitors, RoomClock]]:
    clock = await RoomClock(engine, ROOM).start()
    await engine.rooms.seed(ROOM, capacity=1)
    yield Visitors(engine, ROOM), clock


async def test_a_slot_held_for_an_absent_waiter_passes_on_and_the_waiter_keeps_its_turn(
    engine: Engine, room_on_a_clock: tuple[Visitors, RoomClock],
) -> None:
    line, clock = room_on_a_clock
    assert (await line.visit("A")).state is ADMITTED
    for visitor in "BCD":
        assert (await line.visit(visitor)).state is WAITING
    await engine.release(ROOM, "A")
    assert await _held(engine) == ["B"]  # B's turn: the slot is held for B
    await clock.advance(CLAIM_WINDOW + 1)  # ... who does not come
    assert await state(line, "C") is ADMITTED  # the slot went on
    assert await state(line, "D") is WAITING
    back = await line.visit("B", join=False)  # B comes back: the next slot is B's
    assert (back.state, back.position) == (WAITING, 1)
    await engine.release(ROOM, "C")
    assert await state(line, "D") is WAITING
    assert await state(line, "B") is ADMITTED
    await engine.release(ROOM, "B")
    assert await state(line, "D") is ADMITTED


async def test_a_waiter_told_it_is_admitted_keeps_the_slot_while_it_comes(
    engine: Engine, room_on_a_clock: tuple[Visitors, RoomClock],
) -> None:
    line, clock = room_on_a_clock
    await line.visit("A")
    await line.visit("B")
    await line.visit("C")
    await engine.release(ROOM, "A")
    await clock.advance(CLAIM_WINDOW - 1)
    # B's page hears it (a status poll, an event stream): not yet a session...
    told = await engine.visit(ROOM, "B", number=line.numbers["B"], join=False, claim=False)
    assert told.state is ADMITTED
    held = await engine.redis.hget(room_keys(ROOM).deadline, "B")
    assert held is not None and held.startswith(b"h")  # only how long it may be held
    await clock.advance(CLAIM_WINDOW - 1)  # past the first window: held again on telling
    assert await state(line, "C") is WAITING
    assert await state(line, "B") is ADMITTED  # its page arrives
    hard = await engine.redis.hget(room_keys(ROOM).deadline, "B")
    assert hard is not None and int(hard) != 0  # a session now: its end is set


async def test_first_come_first_served_among_the_waiters_who_are_here(
    engine: Engine, room_on_a_clock: tuple[Visitors, RoomClock],
) -> None:
    line, clock = room_on_a_clock
    for visitor in "ABCDE":
        await line.visit(visitor)
    # B went quiet; C, D and E keep asking, as their pages do, for half the grace.
    for _ in range(2):
        await clock.advance(16)
        for visitor in "CDE":
            assert (await line.visit(visitor, join=False)).state is WAITING
        assert await engine.touch(ROOM, "A")
    await engine.release(ROOM, "A")  # B is next, but not here: C gets the slot
    assert await _held(engine) == ["C"]
    assert await state(line, "D") is WAITING
    assert await state(line, "C") is ADMITTED
    await engine.rooms.configure(ROOM, capacity=2)  # one more slot: D's, not E's
    assert await state(line, "E") is WAITING
    assert await state(line, "D") is ADMITTED
    assert (await line.visit("B", join=False)).position == 1  # back: the next slot
    await engine.release(ROOM, "C")
    assert await state(line, "E") is WAITING
    assert await state(line, "B") is ADMITTED


async def test_a_waiter_on_standby_who_never_comes_back_is_gone_after_the_grace(
    engine: Engine, room_on_a_clock: tuple[Visitors, RoomClock],
) -> None:
    line, clock = room_on_a_clock
    await line.visit("A")
    await line.visit("B")
    await engine.release(ROOM, "A")
    await clock.advance(CLAIM_WINDOW + 1)
    await engine.watch(ROOM)  # a process's look: the slot goes on (nobody to take it)
    assert await _held(engine) == []
    assert await engine.redis.zcard(room_keys(ROOM).standby) == 1
    await clock.advance(61)
    await engine.watch(ROOM)
    assert await engine.redis.zcard(room_keys(ROOM).standby) == 0
    assert await state(line, "B") is VisitState.NO_PLACE


async def test_the_doorbell_rings_the_moment_redis_lets_the_waiter_in(engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=1)
    line = Visitors(engine, ROOM)
    await line.visit("A")
    await line.visit("B")
    doorbell = engine.announcements.doorbell(ROOM)
    with doorbell.waiting("B", line.numbers["B"]) as bell:
        await asyncio.wait_for(doorbell.listening.wait(), 10)
        assert not bell.is_set()
        await engine.release(ROOM, "A")  # nobody looks at the line: only Redis tells
        await asyncio.wait_for(bell.wait(), 10)
    assert doorbell.head >= line.numbers["B"]
    # Every room's doorbell shares the process's one subscription (one connection).
    with engine.announcements.doorbell("another-room").waiting("X", 1):
        assert await engine.redis.execute_command("PUBSUB", "NUMPAT") == 1


@pytest.fixture
async def shop(
    make_room: Callable[..., WaitingRoomMiddleware], monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[str]:
    # Waiting pages would ask again only after an hour: what they learn sooner was pushed.
    monkeypatch.setattr(standing, "poll_interval", lambda *args: 3600)
    middleware = make_room(capacity=1)
    async with serve_in_process(middleware) as url:
        yield url


async def _events(stream: httpx.Response) -> AsyncIterator[dict[str, object]]:
    async for line in stream.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


async def test_a_waiter_holding_the_event_stream_is_told_without_polling(shop: str) -> None:
    async with Browser(base_url=shop) as first, \
            Browser(base_url=shop) as second:
        assert (await first.get("/buy")).text == "origin:/buy"
        assert "origin" not in (await second.get("/buy")).text  # the queue page
        async with second.stream("GET", "/_wr/events") as stream:
            events = _events(stream)
            assert (await anext(events))["position"] == 1
            assert (await first.get("/done")).text == "origin:/done"  # ends the session
            assert (await anext(events))["state"] == "admitted"
        assert (await second.get("/buy")).text == "origin:/buy"  # its page goes on


async def test_a_shopper_whose_page_went_away_ends_soon_unless_the_next_page_shows(
    shop: str, engine: Engine,
) -> None:
    async with Browser(base_url=shop) as shopper:
        await shopper.get("/buy")
        session_id = next(iter(await _held(engine, "default")))
        redis_now_ms = await room_ms(engine.redis, "default")
        assert (await shopper.post("/_wr/leave")).status_code == 204
        score = await engine.redis.zscore(room_keys("default").active, session_id)
        assert score is not None
        assert score <= redis_now_ms + (beacons.LEAVE_LINGER_SECONDS + 5) * 1000
        assert (await shopper.post("/_wr/here")).status_code == 204
        score = await engine.redis.zscore(room_keys("default").active, session_id)
        assert score is not None
        assert score > redis_now_ms + 200_000  # the idle timeout again (300 s)
        assert (await shopper.get("/_wr/leave")).status_code == 404  # beacons POST
    async with Browser(base_url=shop) as stranger:
        assert (await stranger.post("/_wr/leave")).status_code == 404  # no session


async def test_a_left_session_ends_after_the_linger_and_the_next_in_line_goes_in(
    engine: Engine, room_on_a_clock: tuple[Visitors, RoomClock],
) -> None:
    line, clock = room_on_a_clock
    await line.visit("A")
    await line.visit("B")
    assert await engine.release(ROOM, "A", linger_seconds=10)
    await clock.advance(9)
    assert await state(line, "B") is WAITING
    await clock.advance(2)
    assert await state(line, "B") is ADMITTED


async def test_a_session_that_makes_no_second_request_ends_after_the_first_idle(
    redis_url: str,
) -> None:
    engine = Engine(connect(redis_url), grace_seconds=60, session_idle_seconds=300,
                    session_max_seconds=1800, session_first_idle_seconds=20)
    try:
        clock = await RoomClock(engine, ROOM).start()
        await engine.rooms.seed(ROOM, capacity=2)
        line = Visitors(engine, ROOM)
        assert (await line.visit("closed-the-tab")).state is ADMITTED
        assert (await line.visit("shopper")).state is ADMITTED
        await clock.advance(5)
        assert await engine.touch(ROOM, "shopper")  # a second page
        await clock.advance(21)
        assert not await engine.touch(ROOM, "closed-the-tab")
        assert await engine.touch(ROOM, "shopper")
    finally:
        await engine.aclose()


@pytest.mark.slow
async def test_a_waiter_on_the_event_stream_is_told_after_redis_was_killed_and_came_back(
    make_room: Callable[..., WaitingRoomMiddleware], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waiting pages would ask again only after an hour: what they learn sooner was pushed.
    monkeypatch.setattr(standing, "poll_interval", lambda *args: 3600)
    with RedisServer(appendfsync="always") as server:
        middleware = make_room(redis_url=server.url, capacity=1)
        async with serve_in_process(middleware) as url, \
                Browser(base_url=url) as first, \
                Browser(base_url=url) as second:
            await first.get("/buy")
            await second.get("/buy")
            async with second.stream("GET", "/_wr/events") as stream:
                events = _events(stream)
                assert (await anext(events))["position"] == 1
                await asyncio.wait_for(middleware.engine.announcements.listening.wait(), 10)
                server.stop(kill=True)  # the subscription and every pooled connection die
                server.start()
                assert (await first.get("/done")).text == "origin:/done"
                assert (await anext(events))["state"] == "admitted"
            assert (await second.get("/buy")).text == "origin:/buy"
        await middleware.aclose()


@pytest.mark.parametrize("renewal", [True, False])
async def test_without_renewal_a_session_lasts_its_full_length_busy_or_idle(
    make_settings: Callable[..., Settings], renewal: bool,
) -> None:
    engine = Engine.from_settings(make_settings(
        session_idle_seconds=60, session_max_seconds=300, session_renewal=renewal))
    try:
        clock = await RoomClock(engine, ROOM).start()
        await engine.rooms.seed(ROOM, capacity=2)
        line = Visitors(engine, ROOM)
        for shopper in ("busy", "idle"):
            assert (await line.visit(shopper)).state is ADMITTED
            assert await engine.touch(ROOM, shopper)  # the first request
        for _ in range(5):  # 250 s: the busy one asks every 50 s, the idle one never
            await clock.advance(50)
            assert await engine.touch(ROOM, "busy")
        assert await engine.touch(ROOM, "idle") is not renewal  # idle 250 s: ended if renewed
        await clock.advance(51)  # 301 s after the first request: over, however busy
        assert not await engine.touch(ROOM, "busy") and not await engine.touch(ROOM, "idle")
    finally:
        await engine.aclose()
