"""Random interleavings of join / poll / leave / release / expire / resize against the
real engine, each step checked against a plain-Python model of the rules.

The model is the specification: live waiters in arrival order, sessions as a set,
walk-aways pruned, free slots filled from the head of the line. A walk-away is real:
the room's clock runs past the grace while everyone else keeps asking. So are the
faults the model says change nothing: an outage (the clock jumps up to ten graces
while no script runs), a process lost with the waiters it heard, and the same visitor
joining twice at once (two tabs, or a retry whose reply was lost).
Matching it exactly after every step proves the invariants: never over capacity,
first come first served, exact positions that never go up.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from tests.places import RoomClock, Visitors, line_ids
from waitingroom.engine import Engine, Visit, VisitState, room_keys

ROOM = "prop"
LONG_AGO_MS = 10**9
OUTAGE_MS = 20_000
"""On simulated time, a gap between calls longer than this is an outage (the planner's
clock has none unless asked; live rooms use a second)."""


class Model:
    """The admission rules, written the obvious way."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queue: list[str] = []
        self.active: set[str] = set()
        self.stale: set[str] = set()  # left the page longer ago than the grace
        self.expired: set[str] = set()  # sessions past their expiry

    def prune(self) -> None:
        self.queue = [v for v in self.queue if v not in self.stale]
        self.active -= self.expired
        self.stale.clear()
        self.expired.clear()

    def fill(self) -> None:
        while self.queue and len(self.active) < self.capacity:
            self.active.add(self.queue.pop(0))

    def visit(self, visitor: str, join: bool) -> tuple[VisitState, int]:
        self.prune()
        self.fill()
        if visitor not in self.active and visitor not in self.queue and join:
            self.queue.append(visitor)
            self.fill()
        if visitor in self.active:
            return VisitState.ADMITTED, 0
        if visitor in self.queue:
            return VisitState.WAITING, self.queue.index(visitor) + 1
        return VisitState.NO_PLACE, 0

    def touch(self, session: str) -> bool:
        self.prune()
        alive = session in self.active
        self.fill()
        return alive

    def release(self, session: str) -> bool:
        removed = session in self.active
        self.active.discard(session)
        self.expired.discard(session)
        self.prune()
        self.fill()
        return removed


class EngineMachine(RuleBasedStateMachine):
    """Drives the real engine and the model side by side."""

    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        with redis.Redis.from_url(self.redis_url) as client:
            client.flushall()
        self.loop = asyncio.new_event_loop()
        # Sessions never reach their maximum here: walk-aways make the clock run.
        self.engine = Engine(Redis.from_url(self.redis_url), grace_seconds=60,
                             session_idle_seconds=300, session_max_seconds=10**7)
        self.line = Visitors(self.engine, ROOM)
        self.clock = RoomClock(self.engine, ROOM)
        self.model = Model(capacity=1)
        self.next_id = 0
        self.ended: list[str] = []  # sessions released: their ids may come back
        self.last_position: dict[str, int] = {}
        self.ceiling = 1  # most sessions allowed: the capacity, or fewer than before a cut

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.engine.aclose())
        self.loop.close()

    @initialize(capacity=st.integers(1, 4))
    def open_room(self, capacity: int) -> None:
        self.model.capacity = self.ceiling = capacity
        self.run(self.clock.start())
        self.run(self.engine.rooms.seed(ROOM, capacity=capacity))
        self.run(self.engine.redis.hset(room_keys(ROOM).config, "outage_ms", OUTAGE_MS))

    def _check_visit(self, visitor: str, join: bool) -> None:
        visit = self.run(self.line.visit(visitor, join=join))
        assert (visit.state, visit.position) == self.model.visit(visitor, join)
        if visit.state is VisitState.WAITING:
            assert visit.position <= self.last_position.get(visitor, visit.position)
            self.last_position[visitor] = visit.position
        else:
            self.last_position.pop(visitor, None)

    @rule()
    def arrive(self) -> None:
        self.next_id += 1
        self._check_visit(f"v{self.next_id:011d}", join=True)

    @precondition(lambda self: self.model.queue)
    @rule(data=st.data())
    def poll(self, data: st.DataObject) -> None:
        self._check_visit(data.draw(st.sampled_from(self.model.queue)), join=False)

    @precondition(lambda self: self.model.queue)
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        visitor = data.draw(st.sampled_from(self.model.queue))
        self._look(heard=self.model.queue)
        self._claim_all()
        self.model.stale.add(visitor)
        self.last_position.pop(visitor, None)
        # The grace and one epoch go by; the others keep asking, sessions stay busy.
        for _ in range(5):
            self.run(self.clock.advance(15))
            self._look(heard=[v for v in self.model.queue if v != visitor])
            for session in sorted(self.model.active):
                assert self.run(self.engine.touch(ROOM, session))

    @rule(graces=st.integers(1, 10))
    def outage(self, graces: int) -> None:
        # Everyone was asking until Redis went away, and asks again once it is back.
        self._look(heard=self.model.queue)
        self._claim_all()
        self.run(self.clock.advance(60 * graces))
        self._all_ask()

    @rule()
    def process_lost(self) -> None:
        # A process heard everyone, then died before handing them in; they ask another
        # process within the grace.
        self._claim_all()
        self.run(self.clock.advance(15))
        self._all_ask()

    @rule(data=st.data())
    def join_twice_at_once(self, data: st.DataObject) -> None:
        if self.ended and data.draw(st.booleans()):
            visitor = self.ended.pop(data.draw(st.integers(0, len(self.ended) - 1)))
        else:
            self.next_id += 1
            visitor = f"v{self.next_id:011d}"
        if visitor in self.model.active or visitor in self.model.queue:
            return
        at_once = data.draw(st.booleans())  # two tabs; else a retry after a lost reply

        async def join_twice() -> list[Visit]:
            if at_once:
                return await asyncio.gather(*(self.engine.visit(ROOM, visitor)
                                              for _ in range(2)))
            return [await self.engine.visit(ROOM, visitor) for _ in range(2)]

        first, second = self.run(join_twice())
        expected = self.model.visit(visitor, join=True)
        assert (first.state, first.position) == expected
        assert (second.state, second.position, second.number) == (
            first.state, first.position, first.number)
        if first.number:
            self.line.numbers[visitor] = first.number

    def _claim_all(self) -> None:
        """Everyone let in comes for the slot within the claim window (the clock is
        about to pass it; the rule for those who do not is tested in test_goodput)."""
        claimed: set[str] = set()
        while unclaimed := sorted(self.model.active - claimed):
            for session in unclaimed:
                assert self.run(self.engine.touch(ROOM, session)) == self.model.touch(session)
                claimed.add(session)

    def _all_ask(self) -> None:
        """Every waiter asks (a process's look hands them in); every session is used."""
        self._look(heard=self.model.queue)
        for session in sorted(self.model.active):
            assert self.run(self.engine.touch(ROOM, session))

    def _look(self, heard: list[str]) -> None:
        """A process's look at the line (upkeep included), handing in who was heard."""
        self.run(self.engine.watch(ROOM, [self.line.numbers[v] for v in heard]))
        self.model.prune()
        self.model.fill()

    @precondition(lambda self: self.model.active)
    @rule(data=st.data())
    def use_session(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(sorted(self.model.active)))
        assert self.run(self.engine.touch(ROOM, session)) == self.model.touch(session)

    @precondition(lambda self: self.model.active)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(sorted(self.model.active)))
        assert self.run(self.engine.release(ROOM, session)) == self.model.release(session)
        self.ended.append(session)
        self.line.numbers.pop(session, None)
        self.last_position.pop(session, None)  # back of the line if it comes again

    @precondition(lambda self: self.model.active)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(sorted(self.model.active)))
        active = room_keys(ROOM)[2]
        # Used first, so it is a session, not a slot held for a visitor on the way.
        assert self.run(self.engine.touch(ROOM, session)) == self.model.touch(session)
        self.run(self.engine.redis.zadd(active, {session: LONG_AGO_MS}, xx=True))
        self.model.expired.add(session)

    @rule(capacity=st.integers(1, 5))
    def resize(self, capacity: int) -> None:
        self.run(self.engine.rooms.configure(ROOM, capacity=capacity))
        self.model.capacity = capacity
        # Cutting capacity ends no session; it stops admissions until below the cap.
        self.ceiling = max(capacity, len(self.model.active))

    @invariant()
    def redis_matches_the_model(self) -> None:
        sessions = self.run(self.engine.redis.zrange(room_keys(ROOM).active, 0, -1))
        assert self.run(line_ids(self.engine, ROOM)) == self.model.queue
        assert {s.decode() for s in sessions} == self.model.active

    @invariant()
    def never_over_capacity(self) -> None:
        sessions = self.run(self.engine.redis.zcard(room_keys(ROOM)[2]))
        assert sessions <= self.ceiling
        self.ceiling = max(self.model.capacity, sessions)


def test_engine_matches_the_model_under_random_interleavings(redis_url: str) -> None:
    EngineMachine.redis_url = redis_url
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(max_examples=60, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )

