"""A process's copy of the line: exact positions from it, no Redis round trip for a
waiter's poll, and the waiters it heard from keep their places."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.places import RoomClock, Visitors
from tests.servers import Browser
from waitingroom.engine import Engine
from waitingroom.engine import line as _line
from waitingroom.engine.line import LineView, LineWatch
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.room.eta import AdmissionRate

ROOM = "default"
JSON = {"accept": "application/json"}


def _bitmap(first_byte: int, bits: set[int], end: int) -> bytes:
    out = bytearray(max(0, end // 8 + 1 - first_byte))
    for n in bits:
        if n // 8 >= first_byte and n // 8 - first_byte < len(out):
            out[n // 8 - first_byte] |= 0x80 >> (n % 8)
    return bytes(out)


@given(head=st.integers(0, 300), length=st.integers(0, 300), ahead=st.integers(0, 5),
       walked=st.sets(st.integers(0, 700)), cut=st.integers(0, 40), data=st.data())
def test_a_view_gives_the_position_counting_only_those_still_ahead(
    head: int, length: int, ahead: int, walked: set[int], cut: int, data: st.DataObject
) -> None:
    end = head + length
    first_byte = (head + 1) // 8
    # Redis returns the bitmap only as far as it was ever written: maybe shorter.
    left = _bitmap(first_byte, walked, end)
    left = left[:max(0, len(left) - cut)]
    kept = {n for n in walked if (n // 8 - first_byte) < len(left)}
    view = LineView(head, end, ahead, 0, 0, first_byte, left, frozenset())
    number = data.draw(st.integers(0, end + 5))
    expected = None
    if head < number <= end and number not in kept:
        expected = ahead + sum(1 for n in range(head + 1, number) if n not in kept) + 1
    assert view.position(number) == expected
    # Those served before whoever comes after ``number``: walk-aways not counted.
    assert view.through(number) == ahead + sum(
        1 for n in range(head + 1, min(number, end) + 1) if n not in kept)


def test_the_eta_counts_those_ahead_who_will_leave_before_their_turn() -> None:
    """Half a place a second goes in, and as many again leave (tab closed, walked
    away): a waiter at 40 is told about 63 s, not the 80 s that 40 at half a place a
    second would make, and not the 40 s that counting every leaver would."""
    rate = AdmissionRate()
    rate.observe_line(LineView(0, 100, 0, 0, 0, 0, b"", frozenset()))
    for second in range(1, 61):  # each second: 0.5 let in, 0.5 of those left leave
        walked = set(range(100 - second // 2 + 1, 101))  # from the back, say
        view = LineView(second // 2, 100, 0, second // 2, second * 1000, 0,
                        _bitmap(0, walked, 100), frozenset())
        rate.observe_line(view)
    assert view.through(100) == 40 and rate.per_second() == 0.5
    hazard = 30 / (60 * (100 + 40) / 2)  # left otherwise, per waiter ahead and second
    assert rate.eta_seconds(40) == math.ceil(math.log1p(hazard * 40 / 0.5) / hazard) == 64
    quiet = AdmissionRate()  # nobody leaves: the place over the rate, as before
    for second in range(61):
        quiet.observe_line(LineView(second // 2, 100, 0, second // 2, second * 1000, 0, b"",
                                    frozenset()))
    assert quiet.eta_seconds(40) == 80
    # The room reset (its line numbers start again): the walk-aways measured before
    # hold no more; a short new line with nobody leaving is told place / rate.
    start = 61_000
    for second in range(61):
        rate.observe_line(LineView(second // 2, 19, 0, second // 2, start + second * 1000, 0,
                                   b"", frozenset()))
    assert rate.per_second() == 0.5 and rate.eta_seconds(18) == 36  # (33 with the old walk-aways)


def test_a_renamed_place_is_not_answered_from_the_view() -> None:
    view = LineView(0, 10, 0, 0, 0, 0, b"", frozenset({4}))
    assert view.position(3) == 3 and view.position(4) is None


async def evalsha_calls(engine: Engine) -> int:
    stats = await engine.redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {"calls": 0})["calls"])


async def test_polls_are_answered_from_the_copy_and_keep_their_places(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    # The one let in makes a single request: it keeps its session as long as any.
    room = make_room(capacity=1, session_first_idle_seconds=0)
    transport = httpx.ASGITransport(app=room)
    clients = [Browser(transport=transport, base_url="http://shop.test", headers=JSON)
               for _ in range(6)]
    gate = room.rooms.default.room
    try:
        clock = await RoomClock(room.engine, ROOM).start()
        waiters = clients[1:]  # the first is let in
        for client in clients:
            await client.get("/checkout")
        silent = waiters[1]
        await gate.line.look()
        before = await evalsha_calls(room.engine)
        positions = [(await w.get("/_wr/status")).json()["position"] for w in waiters]
        assert positions == [1, 2, 3, 4, 5]
        assert await evalsha_calls(room.engine) == before  # no round trip for any poll

        # The grace and a bit go by; all but one keep polling, answered from the copy,
        # which hands in whom it heard from at each look: their places are kept.
        for _ in range(5):
            await clock.advance(15)
            for waiter in waiters:
                if waiter is not silent:
                    assert (await waiter.get("/_wr/status")).json()["state"] == "queued"
            await gate.line.look()
        answers = [(await w.get("/_wr/status")).json() for w in waiters if w is not silent]
        assert [a["position"] for a in answers] == [1, 2, 3, 4]
        assert (await room.engine.rooms.counts(ROOM)).abandoned == 1
        # The one who walked away comes back to a new place at the back.
        back = (await silent.get("/_wr/status")).json()
        assert (back["state"], back["position"]) == ("queued", 5)
    finally:
        for client in clients:
            await client.aclose()


async def test_the_view_matches_what_redis_says_for_every_waiter(engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=2)
    line = Visitors(engine, ROOM)
    clock = await RoomClock(engine, ROOM).start()
    visitors = [f"v{i:011d}" for i in range(40)]
    for visitor in visitors:
        await line.visit(visitor)
    leaving = set(visitors[5::7])
    for _ in range(5):  # walk-aways scattered through the line
        await clock.advance(15)
        await engine.watch(ROOM, [line.numbers[v] for v in visitors[2:] if v not in leaving])
    view = await engine.watch(ROOM)
    for visitor in visitors[2:]:
        from_redis = await line.visit(visitor, join=False)
        expected = None if visitor in leaving else from_redis.position
        assert view.position(line.numbers[visitor]) == expected


async def test_a_process_stops_looking_only_once_the_line_is_empty_and_quiet(
    engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_line, "IDLE_SECONDS", 0.0)  # nobody asking counts at once
    monkeypatch.setattr(_line, "WATCH_SECONDS", 0.01)
    await engine.rooms.seed(ROOM, capacity=1)
    line = Visitors(engine, ROOM)
    await line.visit("in")
    await line.visit("waiter")
    looks: asyncio.Queue[LineView] = asyncio.Queue()
    watch = LineWatch(engine.watch, ROOM, on_look=looks.put_nowait)
    watch.keep_looking()
    for _ in range(3):  # somebody waits: the looks go on though nobody asks
        await asyncio.wait_for(looks.get(), 5)
    looking = watch._task
    assert looking is not None and not looking.done()
    await engine.release(ROOM, "in")  # the waiter goes in: the line is empty
    await asyncio.wait_for(looking, 5)  # and the looks end by themselves
    assert watch._task is None
    assert watch.position(line.numbers["waiter"]) is None  # a question starts them again
    assert watch._task is not None
    await watch.aclose()


async def test_closing_stops_the_looks_even_when_the_cancel_lands_with_a_wake(
    engine: Engine,
) -> None:
    """Python 3.11's wait_for swallows a cancel that lands in the turn its event is
    set: the looks went on for ever, and a shutdown waiting on them never ended (seen
    on CI). Closing ends them whatever the cancel does, and for good."""
    await engine.rooms.seed(ROOM, capacity=1)
    line = Visitors(engine, ROOM)
    await line.visit("in")
    await line.visit("waiter")  # somebody waits: the looks would go on by themselves
    looks: asyncio.Queue[LineView] = asyncio.Queue()
    watch = LineWatch(engine.watch, ROOM, on_look=looks.put_nowait)
    watch.keep_looking()
    await asyncio.wait_for(looks.get(), 5)  # between looks, waiting on the wake
    looking = watch._task
    assert looking is not None
    watch.stale()  # the wake is set, and in the same turn the cancel comes
    await watch.aclose()
    assert looking.done()
    watch.keep_looking()  # a late question (a tick, a poll) starts nothing after close
    assert watch._task is None


async def test_the_admissions_listener_stops_for_good_when_closed(engine: Engine) -> None:
    engine.announcements.listen()
    await asyncio.wait_for(engine.announcements.listening.wait(), 5)
    listening = engine.announcements._task
    assert listening is not None
    await engine.announcements.aclose()
    assert listening.done() and not engine.announcements.listening.is_set()
    engine.announcements.listen()
    assert engine.announcements._task is None
