"""A launch to plan and what planning it found: the arrivals curve, the room's settings
and their changes over time (``Plan``, ``PlannedStep``), samples and the outcome. Both
planners play it: :mod:`waitingroom.tools.model` (quick) and
:mod:`waitingroom.tools.simulate` (the room's own scripts)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise


class ArrivalCurve:
    """Arrivals per minute over time: points ``MINUTE:PER_MINUTE`` joined by straight
    lines, nothing before the first point or after the last.

    ``"0:0,1:20000,5:2000,30:0"``: a spike to 20k a minute one minute in, down to 2k a
    minute by minute 5, then tailing off to none at minute 30.
    """

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        if len(points) < 2:
            raise ValueError("arrivals need at least two MINUTE:PER_MINUTE points")
        if any(b[0] <= a[0] for a, b in pairwise(points)):
            raise ValueError("arrival minutes must increase")
        if any(m < 0 or rate < 0 for m, rate in points):
            raise ValueError("arrival minutes and rates must not be negative")
        self.points = [(m * 60.0, rate / 60.0) for m, rate in points]  # seconds, per second

    @classmethod
    def parse(cls, text: str) -> ArrivalCurve:
        """Read ``MINUTE:PER_MINUTE,...``; ValueError says what is wrong."""
        try:
            points = [tuple(float(x) for x in part.split(":")) for part in text.split(",")]
        except ValueError:
            raise ValueError(f"arrivals must look like 0:0,1:20000,30:0, not {text!r}") from None
        if any(len(p) != 2 for p in points):
            raise ValueError(f"arrivals must look like 0:0,1:20000,30:0, not {text!r}")
        return cls([(p[0], p[1]) for p in points])

    @property
    def end_seconds(self) -> float:
        """When the last arrival can come."""
        return self.points[-1][0]

    def expected(self, until: float) -> float:
        """Arrivals expected from the start until ``until`` seconds (the area under the
        curve)."""
        total = 0.0
        for (t0, r0), (t1, r1) in pairwise(self.points):
            if until <= t0:
                break
            end = min(until, t1)
            r_end = r0 + (r1 - r0) * (end - t0) / (t1 - t0)
            total += (r0 + r_end) / 2 * (end - t0)
        return total


_STEP_NAMES = {"capacity": "capacity", "rate": "rate_per_minute", "stock": "stock"}


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A change of the room's settings at a minute of the launch, as the room's
    timeline makes one (``waitingroom admin plan``)."""

    minute: float
    capacity: int | None = None
    rate_per_minute: int | None = None
    stock: int | None = None
    """Units on sale from then (a restock, say)."""

    @classmethod
    def parse(cls, text: str) -> PlannedStep:
        """``MINUTE:name=value[,name=value]`` (capacity, rate, stock), e.g.
        ``30:capacity=800,rate=2000``; ValueError says what is wrong."""
        minute, colon, changes = text.partition(":")
        try:
            values = {_STEP_NAMES[name]: int(value) for name, _, value in
                      (part.partition("=") for part in changes.split(","))}
            step = cls(float(minute), **values) if colon and values else None
        except (KeyError, ValueError):
            step = None
        if step is None or step.minute < 0 or any(v < 0 for v in values.values()) or (
                step.capacity == 0):
            raise ValueError(f"--step must look like 30:capacity=800,rate=2000 (capacity, "
                             f"rate, stock), not {text!r}")
        return step


@dataclass(frozen=True, slots=True)
class OriginModel:
    """The order system as the planner models it: ``knee`` sessions are served at
    full speed; past it every answer slows in proportion (processor sharing), and a
    share ``thrash`` of the work is lost per knee's worth of sessions over it (the
    contention that makes an overloaded database serve less, not just later)."""

    knee: int
    answer_ms: float = 200.0
    """An answer's time at full speed."""
    thrash: float = 0.5

    def speed(self, sessions: int) -> float:
        """How fast each session's work goes with ``sessions`` inside (1: full)."""
        over = max(0, sessions - self.knee) / self.knee
        return min(1.0, self.knee / max(sessions, 1)) / (1 + self.thrash * over)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to simulate."""

    arrivals: ArrivalCurve
    capacity: int
    session_seconds: float
    """How long an admitted visitor holds a session before releasing it."""
    abandon_per_minute: float = 0.0
    """Share of the visitors waiting who give up in each minute of waiting (0-1)."""
    rate_per_minute: int = 0
    """Admission rate limit on top of the cap (0: none)."""
    grace_seconds: int = 60
    tick_seconds: float = 1.0
    """Simulated time step; visitors act at most once a step."""
    max_hours: float = 48.0
    """Give up after this much simulated time (the line never drains)."""
    seed: int = 1
    stock: int | None = None
    """Units on sale (None: not counted); the quick model sells out."""
    sales_per_session: float = 1.0
    """Units an admitted shopper buys, on average, when the session ends."""
    steps: tuple[PlannedStep, ...] = ()
    """Changes of the settings during the launch, in any order."""
    origin: OriginModel | None = None
    """The order system's limits (None: it serves any number at full speed)."""
    adaptive: tuple[int, int] | None = None
    """Adaptive capacity between these bounds (None: the capacity is fixed)."""
    adaptive_interval_seconds: int = 5

    @property
    def give_up_hazard(self) -> float:
        """Those waiting give up at this constant rate a second (so patience is
        exponential), from the share who give up each minute."""
        return -math.log(1 - self.abandon_per_minute) / 60

    def steps_due(self, after: float, until: float) -> list[PlannedStep]:
        """The steps due in (``after``, ``until``] seconds, in time order."""
        return sorted((s for s in self.steps if after < s.minute * 60 <= until),
                      key=lambda s: s.minute)

    def __post_init__(self) -> None:
        for ok, problem in (
            (self.capacity >= 1, "--capacity must be at least 1"),
            (self.session_seconds > 0, "--session-minutes must be above 0"),
            (0 <= self.abandon_per_minute < 1, "--abandon-rate must be from 0 to below 1"),
            (self.rate_per_minute >= 0, "--rate must be 0 (no limit) or more"),
            (self.grace_seconds >= 6, "--grace-seconds must be at least 6"),
            (0 < self.tick_seconds <= 10, "--tick-seconds must be above 0 and at most 10"),
            (self.stock is None or self.stock >= 0, "--stock must be 0 or more"),
            (0.01 <= self.sales_per_session <= 1000, "--sales-per-session must be 0.01-1000"),
            (self.stock is not None or all(s.stock is None for s in self.steps),
             "a --step with stock needs --stock"),
            (self.adaptive is None or self.origin is not None,
             "--adaptive needs --origin-knee: the room learns from the origin's answers"),
            (self.adaptive is None or 1 <= self.adaptive[0] <= self.adaptive[1],
             "--adaptive must be MIN:MAX with 1 <= MIN <= MAX"),
            (self.origin is None or self.origin.knee >= 1, "--origin-knee must be 1 or more"),
        ):
            if not ok:
                raise ValueError(problem)


@dataclass(frozen=True, slots=True)
class Sample:
    """The room at one moment of simulated time."""

    t: float
    """Seconds since the start."""
    arrived: int
    waiting: int
    active: int
    admitted: int
    abandoned: int = 0
    """Gave up so far."""
    capacity: int = 0
    """The cap then (it moves with the timeline, or as an adaptive room learns)."""


@dataclass(slots=True)
class Outcome:
    """What the simulation saw."""

    samples: list[Sample] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    """Seconds from arrival to admission, one per admitted visitor."""
    arrived: int = 0
    abandoned: int = 0
    max_active: int = 0
    drain_seconds: float | None = None
    """When the last visitor in line was admitted (None: not within ``max_hours``)."""
    sold_out_seconds: float | None = None
    """When the stock ran out (None: it lasted, or was not counted)."""
    told_unlikely: int = 0
    """Arrivals told on joining that the stock would most likely run out first."""
    waiting_at_sell_out: int = 0
    """Those in line when it sold out, told so at once."""
    turned_away: int = 0
    """Arrivals after the sell-out: shown the sold-out page, given no place."""
    completed: int = 0
    """Sessions that ended (each one served)."""
    answers: list[tuple[float, float]] = field(default_factory=list)
    """The origin's answer time (ms) each tick, with the answers given in it."""

    def answer_percentile(self, share: float) -> float | None:
        """The origin's answer time (ms) at or below which ``share`` of answers came."""
        total, seen = sum(n for _, n in self.answers), 0.0
        for latency, n in sorted(self.answers):
            seen += n
            if seen >= share * total > 0:
                return latency
        return None

    def wait_percentile(self, share: float) -> float | None:
        """The wait at or below which ``share`` (0-1) of admitted visitors got in."""
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def units_bought(rng: random.Random, per_session: float) -> int:
    """What one session buys as it ends: ``per_session`` on average, in whole units."""
    whole = math.floor(per_session)
    return whole + (1 if rng.random() < per_session - whole else 0)
