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
from dataclasses import asdict, dataclass

from waitingroom.engine import Engine, IntervalFigures, RoomChange, RoomConfig

logger = logging.getLogger("waitingroom")

MIN_REQUESTS = 20
"""An interval with fewer answers than this decides nothing (too noisy)."""
ERROR_RATIO = 0.1
"""The share of error answers that lowers the cap by a quarter."""
PROVEN_MIN_REQUESTS = 5
"""An interval with fewer answers proves nothing about how many sessions the origin
serves well."""
PROBE_AFTER = 60
"""Judged intervals since the last probe or big cut after which the room probes: it
lowers the cap by :data:`PROBE_CUT` to see whether fewer sessions are answered faster
(every 5 min at the default 5 s; at the knee it costs well under 1% of goodput).
Longer than any test's run at 1 s intervals: noisy one-second means can chain probes."""
PROBE_SOON = 2
"""After a probe that found the origin faster with fewer: the next probe's wait."""
PROBE_CUT = 0.1
"""A probe's cut, as a share of the sessions inside."""
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
    latency = figures.mean_latency_ms
    slower, restore = _judge_last_cut(memory, latency, active, capacity)
    memory.unloaded = min(memory.unloaded or latency, latency)
    unloaded = memory.unloaded
    waiting = active * max(0.0, 1 - unloaded / latency) if latency > 0 else 0.0
    margin = max(1, round(0.03 * capacity))
    said = (f"latency {latency / 1000:.2f} s vs {unloaded / 1000:.2f} s unloaded{slower}: "
            f"about {waiting:.0f} of {active} sessions waiting on the origin")
    new = capacity
    memory.calm += 1
    if restore > capacity:
        new = restore
        said += ": fewer were answered no faster, so the cap goes back"
    elif active > capacity or memory.cut_from:
        said += " (a lower cap is still taking effect)"
    elif waiting > max(3.0, 0.06 * capacity):
        memory.ceiling = capacity
        new = max(low, min(capacity - 1, round(active - waiting) + margin))
        if new <= 0.8 * active:  # a big cut: a gain to see past the noise
            memory.cut_from, memory.cut_active, memory.cut_settled = latency, active, False
            memory.calm = 0  # it shows the origin lighter: as good as a probe
    elif active >= 0.9 * capacity and capacity > low and memory.calm >= (
            PROBE_SOON if memory.probe_gain else PROBE_AFTER):
        # The unloaded time is the lowest seen: a room that never ran light (started
        # too high, or switched on mid-launch) would take a loaded time for it and never
        # come down. So, now and then, fewer: if they are answered faster, the origin
        # was queueing, and the faster time is the unloaded one from now on.
        new = max(low, min(capacity - 1, round(active * (1 - PROBE_CUT))))
        memory.calm, memory.probing, memory.probe_from = 0, True, capacity
        memory.cut_from, memory.cut_active, memory.cut_settled = latency, active, False
        said += ": probing whether fewer are answered faster"
    elif waiting < margin and active >= 0.9 * capacity:  # in use, and served at once
        careful = capacity >= 0.9 * memory.ceiling > 0  # near where it last went wrong
        new = min(high, capacity + (1 if careful else max(1, round(0.1 * capacity))))
    new = max(low, min(high, new))
    return Decision(new, f"{said}: {capacity} → {new}" if new != capacity else said)


def _judge_last_cut(memory: Memory, latency: float, active: int,
                    capacity: int) -> tuple[str, int]:
    """Once the last big cut has taken effect for a whole interval, what it showed:
    words to add if the origin itself got slower, and the cap to go back to if a probe
    was answered no faster (0: none)."""
    slower, restore = "", 0
    if memory.cut_from and active <= capacity:  # the last big cut has taken effect
        if memory.cut_settled:  # for a whole interval: judge it
            if memory.probing:  # faster by 3/4 of what the cut should give: again
                gain = memory.cut_from * (1 - active / memory.cut_active) * 0.75
                memory.probe_gain, memory.probing = latency <= memory.cut_from - gain, False
                restore = 0 if memory.probe_gain else memory.probe_from
            else:
                expected = max(memory.unloaded, memory.cut_from * active / memory.cut_active)
                if latency > (expected + memory.cut_from) / 2:  # not half the gain expected
                    memory.unloaded = latency
                    slower = " (fewer sessions were no faster: the origin is)"
            memory.cut_from = 0.0
        memory.cut_settled = not memory.cut_settled
    return slower, restore


def proves(figures: IntervalFigures, active: int) -> bool:
    """Did the origin serve ``active`` sessions well in an interval: busy (a request
    per session at least, :data:`PROVEN_MIN_REQUESTS` in all) and few errors?"""
    return (figures.requests >= max(PROVEN_MIN_REQUESTS, active)
            and figures.error_ratio < ERROR_RATIO)


@dataclass(slots=True)
class Memory:
    """What the decisions keep between intervals."""

    unloaded: float = 0.0
    """The origin's unloaded answer time (ms): the lowest mean seen. It never creeps
    up by itself (a room held near the knee never sees the unloaded time again, so
    any window would fill with loaded times, and the cap would follow); it is raised
    only on evidence (:attr:`cut_from`)."""
    cut_from: float = 0.0
    """The answer time when the cap was last lowered by a fifth or more for waiting,
    until the cut has been judged: if, an interval after it took effect, fewer
    sessions are answered not even half as much faster as expected, the origin itself
    got slower, and that is its unloaded time now."""
    cut_active: int = 1
    """The sessions inside when the cap was last lowered for waiting."""
    cut_settled: bool = False
    """The cut has taken effect (sessions within the cap) for an interval."""
    ceiling: int = 0
    """The cap that last proved too high (growth is careful near it)."""
    calm: int = 0
    """Intervals judged since the last probe or big cut (:data:`PROBE_AFTER`)."""
    probing: bool = False
    """The cut being judged is a probe."""
    probe_from: int = 0
    """The cap before the last probe (it goes back there if the probe showed nothing)."""
    probe_gain: bool = False
    """The last probe found fewer sessions answered faster: the next comes soon."""


class AdaptiveCapacity:
    """One process's part: it times the origin's answers, adds them to Redis each
    tick, and, while the room is adaptive, takes its turn to decide."""

    def __init__(self, engine: Engine, room: str, interval_seconds: int) -> None:
        self.engine = engine
        self.room = room
        self.interval_seconds = interval_seconds
        self._seen: dict[int, list[int]] = {}  # interval -> [answers, latency ms, errors]
        self._decided = -1

    def observe(self, started: float, ok: bool) -> None:
        """Count one answer of the origin: begun at ``started`` (``time.monotonic``),
        an error unless ``ok``."""
        now = time.monotonic()
        seen = self._seen.setdefault(int(time.time() // self.interval_seconds), [0, 0, 0])
        seen[0] += 1
        seen[1] += int((now - started) * 1000)
        seen[2] += not ok

    async def tick(self, config: RoomConfig) -> None:
        """Add this process's figures to Redis; judge the last interval if this
        process wins it: the sessions the origin served well (any room), the cap (an
        adaptive room)."""
        seen, self._seen = self._seen, {}
        for interval, (answers, latency_ms, errors) in seen.items():
            await self.engine.origin.add(self.room, interval,
                                         IntervalFigures(answers, latency_ms, errors))
        ended = int((time.time() - _GRACE_SECONDS) // self.interval_seconds) - 1
        if ended <= self._decided:
            return
        self._decided = ended
        kept = await self.engine.origin.claim(self.room, ended)
        if kept is None:
            return  # another process decides this one
        figures = await self.engine.origin.interval(self.room, ended)
        active = (await self.engine.rooms.counts(self.room)).active
        if proves(figures, active):
            await self.engine.origin.prove(self.room, active)
        if config.capacity_mode != "adaptive":
            return
        memory = Memory(**kept)
        decision = decide(config.capacity, figures, memory, active,
                          config.capacity_min, config.capacity_max)
        await self.engine.origin.remember(self.room, asdict(memory))
        # Made only if the room is still adaptive at the cap judged: ops who pinned it
        # meanwhile win.
        if decision.capacity != config.capacity and await self.engine.rooms.change(
                self.room, "adaptive", f"interval {ended}: {decision.reason}",
                RoomChange(capacity=decision.capacity),
                only_if={"capacity_mode": "adaptive", "capacity": str(config.capacity)}):
            logger.info("room %s: adaptive capacity: %s", self.room, decision.reason)
