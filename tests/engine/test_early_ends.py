"""Sessions that never come back give their slot back fast (issue 27): a session that
made one request only ends after the short first idle time, one whose page said it went
ends after the linger; either way its holder gets the first free slot if back within
the grace. A slot only told about (never claimed) is held a few claim windows at most,
however often the client asks. Room time is moved by the test (``RoomClock``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.places import RoomClock, Visitors
from waitingroom.engine import Engine, VisitState, room_keys
from waitingroom.settings import Settings

ROOM = "early"


@pytest.fixture
async def engine(make_settings: Callable[..., Settings]) -> AsyncIterator[Engine]:
    """An engine at the shipped session settings (first idle 10 s, idle 300 s, grace
    60 s: claim window 5 s)."""
    engine = Engine.from_settings(make_settings())
    await engine.rooms.seed(ROOM, capacity=1)
    yield engine
    await engine.aclose()


async def test_one_request_and_gone_frees_the_slot_after_the_first_idle(
        engine: Engine) -> None:
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    assert (await line.visit("tab")).state is VisitState.ADMITTED  # its one request
    assert (await line.visit("next")).state is VisitState.WAITING
    await clock.advance(9)
    assert (await line.visit("next")).state is VisitState.WAITING
    await clock.advance(2)
    assert (await line.visit("next")).state is VisitState.ADMITTED
    counts = await engine.rooms.counts(ROOM)
    assert (counts.early, counts.expired) == (1, 0)


async def test_a_second_request_makes_it_a_session_like_any(engine: Engine) -> None:
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    await line.visit("shopper")
    await clock.advance(5)
    assert await engine.touch(ROOM, "shopper")  # the page's script, or the next page
    await line.visit("next")
    await clock.advance(299)  # 304 s: idle 300 s since the second request
    assert (await line.visit("next")).state is VisitState.WAITING
    await clock.advance(2)
    assert (await line.visit("next")).state is VisitState.ADMITTED
    assert (await engine.rooms.counts(ROOM)).expired == 1


async def test_an_early_end_keeps_the_first_free_slot_for_the_grace(engine: Engine) -> None:
    """A shopper off to a payment provider's check (its page said it went) comes back
    after the linger: the first free slot is theirs, before the line."""
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    await line.visit("payer")
    assert await engine.touch(ROOM, "payer")
    await engine.release(ROOM, "payer", linger_seconds=10)
    await line.visit("next")
    await clock.advance(11)
    assert (await line.visit("next")).state is VisitState.ADMITTED  # the slot went on
    back = await engine.visit(ROOM, "payer")
    assert (back.state, back.position) == (VisitState.WAITING, 1)  # first in the lane
    assert await engine.release(ROOM, await _holder(engine))
    assert (await engine.visit(ROOM, "payer")).state is VisitState.ADMITTED
    await clock.advance(61)  # had they not come back, the grace would have ended it
    assert (await engine.rooms.counts(ROOM)).early == 1


async def test_asking_again_and_again_holds_a_slot_only_a_few_windows(
        engine: Engine) -> None:
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    await line.visit("holder")
    await line.visit("asker")
    await line.visit("next")
    assert await engine.release(ROOM, "holder")  # the asker is let in, told only
    for _ in range(8):  # every 4 s, as a hidden tab's page does: held meanwhile
        told = await engine.visit(ROOM, "asker", number=line.numbers["asker"], claim=False)
        assert told.state is VisitState.ADMITTED
        assert (await line.visit("next")).state is VisitState.WAITING
        await clock.advance(4)
    # 32 s since it was let in: past six 5 s windows, the slot is held no longer.
    assert (await line.visit("next")).state is VisitState.ADMITTED
    counts = await engine.rooms.counts(ROOM)
    assert counts.missed == 1


async def _holder(engine: Engine) -> str:
    (holder, _), = await engine.redis.zrange(room_keys(ROOM).active, 0, 0, withscores=True)
    return holder.decode()


async def test_a_closed_queue_page_holds_no_slot_and_keeps_its_place(engine: Engine) -> None:
    """A waiter whose queue page closed: its turn goes by without a slot held for it
    (the next one present gets it at once); back within the grace, it is first in."""
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    for visitor in ("holder", "closed", "next"):
        await line.visit(visitor)
    assert await engine.hide(ROOM, "closed", line.numbers["closed"])
    assert not await engine.hide(ROOM, "next", line.numbers["closed"])  # not its place
    assert await engine.release(ROOM, "holder")
    assert (await line.visit("next")).state is VisitState.ADMITTED  # no slot held
    assert (await engine.rooms.counts(ROOM)).missed == 1  # on standby, its turn kept
    await clock.advance(5)
    back = await line.visit("closed")
    assert (back.state, back.position) == (VisitState.WAITING, 1)  # first in the lane


async def test_asking_again_undoes_a_closed_page(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    for visitor in ("holder", "reloaded"):
        await line.visit(visitor)
    assert await engine.hide(ROOM, "reloaded", line.numbers["reloaded"])
    assert (await line.visit("reloaded")).state is VisitState.WAITING  # the page is back
    assert await engine.release(ROOM, "holder")
    assert (await line.visit("reloaded")).state is VisitState.ADMITTED
    assert (await engine.rooms.counts(ROOM)).missed == 0


async def test_a_poll_heard_before_the_page_closed_does_not_undo_it(engine: Engine) -> None:
    """A process hands in whom it heard from at its next look: a poll it answered just
    before the page closed must not bring the waiter back; one after the close does."""
    line = Visitors(engine, ROOM)
    for visitor in ("holder", "gone"):
        await line.visit(visitor)
    number = line.numbers["gone"]
    look = await engine.watch(ROOM)  # this process's last look
    assert await engine.hide(ROOM, "gone", number)  # the page closes...
    await engine.watch(ROOM, [number], look.server_ms)  # ...a poll from before it
    assert await engine.release(ROOM, "holder")
    assert (await engine.rooms.counts(ROOM)).missed == 1  # still gone: no slot held


async def test_a_poll_heard_after_the_page_closed_brings_it_back(engine: Engine) -> None:
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    for visitor in ("holder", "reloaded"):
        await line.visit(visitor)
    number = line.numbers["reloaded"]
    assert await engine.hide(ROOM, "reloaded", number)
    await clock.advance(0.5)
    look = await engine.watch(ROOM)  # a look after the close...
    await engine.watch(ROOM, [number], look.server_ms)  # ...then the reloaded page's poll
    assert await engine.release(ROOM, "holder")
    assert (await engine.rooms.counts(ROOM)).missed == 0  # here: the slot is held for it


async def test_a_leave_at_the_end_of_a_session_ends_it_like_any(engine: Engine) -> None:
    """A leave's linger that runs past the session's hard end is no early end: no
    standby, no fresh session ahead of the line."""
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    await line.visit("long")
    assert await engine.touch(ROOM, "long")  # its second request: a session like any
    for _ in range(6):  # busy for its whole 30 minutes
        await clock.advance(290)
        assert await engine.touch(ROOM, "long")
    await line.visit("next")
    await clock.advance(55)  # 5 s of its 1,800 left
    await engine.release(ROOM, "long", linger_seconds=10)
    await clock.advance(6)
    assert (await line.visit("next")).state is VisitState.ADMITTED
    counts = await engine.rooms.counts(ROOM)
    assert (counts.expired, counts.early) == (1, 0)
    back = await engine.visit(ROOM, "long")
    assert back.state is VisitState.WAITING and back.position == 1 and back.number > 0


async def test_one_visitor_holds_one_session_however_many_places_it_took(
        engine: Engine) -> None:
    """A hello sent twice takes two places under one id; when the second's turn comes,
    it takes no second slot and leaves the session as it was."""
    await engine.rooms.configure(ROOM, capacity=2)
    first = await engine.visit(ROOM, "twice", new=True)
    again = await engine.visit(ROOM, "twice", new=True)
    assert first.state is VisitState.ADMITTED and again.state is VisitState.ADMITTED
    active = room_keys(ROOM).active
    assert await engine.redis.zcard(active) == 1
    expiry = await engine.redis.zscore(active, "twice")
    other = await engine.visit(ROOM, "other", new=True)
    assert other.state is VisitState.ADMITTED  # the second slot was free all along
    assert await engine.redis.zscore(active, "twice") == expiry
