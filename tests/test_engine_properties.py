"""Random interleavings of join / poll / leave / release / expire / resize against the
real engine, each step checked against a plain-Python model of the rules.

The model is the specification: live waiters in arrival order, sessions as a set,
walk-aways pruned, free slots filled from the head of the line. A walk-away is real:
the room's clock runs past the grace while everyone else keeps asking.
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
from waitingroom.engine import Engine, VisitState, room_keys

ROOM = "prop"
LONG_AGO_MS = 10**9


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
        self.run(self.engine.seed_room(ROOM, capacity=capacity))

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
        self.model.stale.add(visitor)
        self.last_position.pop(visitor, None)
        # The grace and one epoch go by; the others keep asking, sessions stay busy.
        for _ in range(5):
            self.run(self.clock.advance(15))
            self._look(heard=[v for v in self.model.queue if v != visitor])
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

    @precondition(lambda self: self.model.active)
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        session = data.draw(st.sampled_from(sorted(self.model.active)))
        active = room_keys(ROOM)[2]
        self.run(self.engine.redis.zadd(active, {session: LONG_AGO_MS}))
        self.model.expired.add(session)

    @rule(capacity=st.integers(1, 5))
    def resize(self, capacity: int) -> None:
        self.run(self.engine.set_room_config(ROOM, capacity=capacity))
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

