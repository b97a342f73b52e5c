"""Adaptive capacity: the room learns how many concurrent sessions the origin serves
well, from how it answers them, and moves the cap there (between ops' bounds).

The rule is TCP Vegas's, as Netflix's concurrency-limits applies it to servers: with
``unloaded`` the origin's answer time when nothing waits inside it and ``latency`` the
time now, ``active * (1 - unloaded / latency)`` of the sessions inside are waiting on
the origin rather than being served. Few waiting and the cap in use: raise it by a
tenth. Too many: lower it to the sessions the origin served without waiting, plus a
little. Errors (answers of 500 or more, timeouts) on a tenth of requests or more:
lower it by a quarter, before the breaker (half, by default) opens. Every process
adds what it saw to the interval's figures in Redis; one process decides per
interval (:meth:`~waitingroom.engine.origin_figures.OriginFigures.claim`); a change
is audited with its reason. Lowering never ends a session: fewer are admitted.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

from waitingroom.engine import Engine, IntervalFigures, RoomConfig

logger = logging.getLogger("waitingroom")

MIN_REQUESTS = 20
"""An interval with fewer answers than this decides nothing (too noisy)."""
ERROR_RATIO = 0.1
"""The share of error answers that lowers the cap by a quarter."""
MEMORY = 60
"""Intervals over which the lowest mean answer time is the unloaded one."""
_GRACE_SECONDS = 0.75
"""How long after an interval ends before it is decided: every process (adding its
figures each half second) has added them by then."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The cap for the next interval and why."""

    capacity: int
    reason: str


def decide(capacity: int, figures: IntervalFigures, memory: Memory, active: int,
           low: int, high: int) -> Decision:
    """The cap after an interval with ``figures`` and ``active`` sessions inside at
    its end, between ``low`` and ``high``; ``memory`` (what earlier intervals showed)
    is updated. Pure: the room and the planner's model both use it."""
    if figures.requests < MIN_REQUESTS:
        return Decision(capacity, f"{figures.requests} answers: too few to judge")
    if figures.error_ratio >= ERROR_RATIO:
        memory.ceiling = capacity
        new = max(low, min(capacity, math.floor(capacity * 0.75)))
        return Decision(new, f"errors on {figures.error_ratio:.0%} of answers ≥ "
                             f"{ERROR_RATIO:.0%}: {capacity} → {new}")
    latency, unloaded = figures.mean_latency_ms, memory.unloaded_after(figures)
    waiting = active * max(0.0, 1 - unloaded / latency)
    margin = max(1, round(0.03 * capacity))
    said = (f"latency {latency / 1000:.2f} s vs {unloaded / 1000:.2f} s unloaded: "
            f"about {waiting:.0f} of {active} sessions waiting on the origin")
    new = capacity
    if active > capacity:
        said += " (a lower cap is still taking effect)"
    elif waiting > max(3.0, 0.06 * capacity):
        memory.ceiling = capacity
        new = max(low, min(capacity - 1, round(active - waiting) + margin))
    elif waiting < margin and active >= 0.9 * capacity:  # in use, and served at once
        careful = capacity >= 0.9 * memory.ceiling > 0  # near where it last went wrong
        new = min(high, capacity + (1 if careful else max(1, round(0.1 * capacity))))
    new = max(low, min(high, new))
    return Decision(new, f"{said}: {capacity} → {new}" if new != capacity else said)


@dataclass(slots=True)
class Memory:
    """What the decisions keep between intervals: the recent intervals' mean answer
    times (the unloaded one is low among them) and the cap that last proved too
    high (growth is careful near it)."""

    means: list[float] = field(default_factory=list)
    ceiling: int = 0

    def unloaded_after(self, figures: IntervalFigures) -> float:
        """Remember ``figures``' mean answer time; the unloaded answer time: the
        tenth percentile of the last :data:`MEMORY` intervals' (their lowest is
        biased low by noise)."""
        self.means = [*self.means, figures.mean_latency_ms][-MEMORY:]
        ordered = sorted(self.means)
        return ordered[len(ordered) // 10]


class AdaptiveCapacity:
    """One process's part: it times the origin's answers, adds them to Redis each
    tick, and, while the room is adaptive, takes its turn to decide."""

    def __init__(self, engine: Engine, room: str, interval_seconds: int) -> None:
        self.engine = engine
        self.room = room
        self.interval_seconds = interval_seconds
        self._seen: dict[int, list[int]] = {}  # interval -> [answers, latency ms, errors]
        self._decided = -1
        self.last: IntervalFigures | None = None
        """The last interval decided by this process (for the dashboard)."""

    def observe(self, started: float, ok: bool) -> None:
        """Count one answer of the origin: begun at ``started`` (``time.monotonic``),
        an error unless ``ok``."""
        now = time.monotonic()
        seen = self._seen.setdefault(int(time.time() // self.interval_seconds), [0, 0, 0])
        seen[0] += 1
        seen[1] += int((now - started) * 1000)
        seen[2] += not ok

    async def tick(self, config: RoomConfig) -> None:
        """Add this process's figures to Redis; decide the last interval if it is the
        room's turn to and this process wins it."""
        seen, self._seen = self._seen, {}
        for interval, (answers, latency_ms, errors) in seen.items():
            await self.engine.origin.add(self.room, interval,
                                         IntervalFigures(answers, latency_ms, errors))
        ended = int((time.time() - _GRACE_SECONDS) // self.interval_seconds) - 1
        if config.capacity_mode != "adaptive" or ended <= self._decided:
            return
        self._decided = ended
        kept = await self.engine.origin.claim(self.room, ended)
        if kept is None:
            return  # another process decides this one
        figures = await self.engine.origin.interval(self.room, ended)
        active = (await self.engine.rooms.counts(self.room)).active
        memory = Memory(**kept)
        decision = decide(config.capacity, figures, memory, active,
                          config.capacity_min, config.capacity_max)
        await self.engine.origin.remember(self.room, asdict(memory))
        self.last = figures
        if decision.capacity != config.capacity and await self.engine.origin.learned(
                self.room, config.capacity, decision.capacity):
            logger.info("room %s: adaptive capacity: %s", self.room, decision.reason)
            await self.engine.rooms.audit(self.room, "adaptive",
                                          f"interval {ended}: {decision.reason}",
                                          {"capacity": config.capacity},
                                          {"capacity": decision.capacity})
