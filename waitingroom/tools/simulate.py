"""``waitingroom simulate --exact``: the capacity planner on the real admission engine
(the same Lua scripts, on a private Redis) in simulated time, so ops can choose
capacity and rate before the launch (without ``--exact``, :mod:`waitingroom.tools.model`
plays the same plan by the same rules in plain Python, in seconds):

    waitingroom simulate --arrivals "0:0,1:20000,5:2000,30:0" --capacity 500 \\
        --session-minutes 4 --abandon-rate 0.02 --exact

Simulated visitors behave like the queue page: they arrive by the curve, ask where
they stand at the poll interval the room advises, hold a session for the given
minutes once admitted and then release it; a share of those waiting gives up each
minute. The planner prints the queue length over time, the wait per arrival
(percentiles) and the time to drain, and can plot them.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from redis.asyncio import Redis

from waitingroom.engine import Engine, VisitState
from waitingroom.room.chance import chance_of
from waitingroom.room.eta import AdmissionRate
from waitingroom.status import poll_interval
from waitingroom.tickets import new_visitor_id
from waitingroom.tools.redis_server import RedisServer

_ROOM = "simulated"
_START_MS = 1_000_000_000_000  # any fixed epoch: only differences matter
_SAMPLE_EVERY_SECONDS = 1.0


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


async def simulate(plan: Plan, engine: Engine,
                   report: Callable[[Sample], None] | None = None) -> Outcome:
    """Run ``plan`` through ``engine`` (on a Redis of its own: the room's keys are
    replaced) in simulated time; ``report`` gets every sample as it is taken."""
    await engine.rooms.clear(_ROOM)
    await engine.rooms.configure(_ROOM, capacity=plan.capacity, rate=plan.rate_per_minute,
                                 stock=plan.stock)
    rng = random.Random(plan.seed)
    # Giving up at a constant hazard: patience is exponentially distributed.
    hazard = -math.log(1 - plan.abandon_per_minute) / 60
    outcome = Outcome()
    # (next poll, arrived, gives up, id, arrival number of the place held)
    polls: list[tuple[float, float, float, str, int]] = []
    sessions: list[tuple[float, str]] = []  # (release at, session id)
    waiting = 0
    stock_left = plan.stock
    rate = AdmissionRate()  # as the gates measure it: their advice to poll follows it
    next_sample = 0.0
    t = 0.0
    while t <= plan.max_hours * 3600:
        await engine.rooms.set_clock(_ROOM, _START_MS + round(t * 1000))
        due_releases = []
        while sessions and sessions[0][0] <= t:
            due_releases.append(heapq.heappop(sessions)[1])
        await asyncio.gather(*(engine.release(_ROOM, s) for s in due_releases))
        if plan.stock is not None:  # each session buys as it ends, as the origin would say
            for _ in due_releases:
                left = await engine.stock.sold(_ROOM, units_bought(rng, plan.sales_per_session))
                if left == 0 and outcome.sold_out_seconds is None:
                    outcome.sold_out_seconds, outcome.waiting_at_sell_out = t, waiting
            stock_left = (await engine.rooms.config(_ROOM)).stock
        for _ in range(round(plan.arrivals.expected(t + plan.tick_seconds)) - outcome.arrived):
            patience = rng.expovariate(hazard) if hazard > 0 else math.inf
            heapq.heappush(polls, (t, t, t + patience, new_visitor_id(), 0))
            outcome.arrived += 1
            waiting += 1
        due = []
        while polls and polls[0][0] <= t:
            waiter = heapq.heappop(polls)
            if waiter[2] <= t:  # stops asking; the room drops the place after the grace
                outcome.abandoned += 1
                waiting -= 1
            else:
                due.append(waiter)
        visits = await asyncio.gather(*(engine.visit(_ROOM, w[3], number=w[4]) for w in due))
        for (_, arrived, gives_up, visitor_id, number), visit in zip(due, visits, strict=True):
            rate.observe(visit.server_ms, visit.admitted_total)
            if visit.state is VisitState.NO_PLACE:  # sold out: the page, no place
                outcome.turned_away += 1
                waiting -= 1
                continue
            if plan.stock is not None and number == 0 and visit.position and chance_of(
                    visit.position, stock=stock_left or 0, active=len(sessions),
                    sales_per_session=plan.sales_per_session).level == "unlikely":
                outcome.told_unlikely += 1  # told on joining, as the room tells them
            if visit.state is VisitState.ADMITTED:
                waiting -= 1
                outcome.waits.append(t - arrived)
                outcome.drain_seconds = t
                heapq.heappush(sessions, (t + plan.session_seconds, visitor_id))
            else:
                next_poll = t + poll_interval(visit.position, plan.grace_seconds,
                                              rate.per_second())
                heapq.heappush(polls, (next_poll, arrived, gives_up, visitor_id, visit.number))
        if t >= next_sample:
            counts = await engine.rooms.counts(_ROOM)
            outcome.max_active = max(outcome.max_active, counts.active)
            outcome.samples.append(Sample(t, outcome.arrived, counts.waiting, counts.active,
                                          len(outcome.waits), outcome.abandoned))
            if report is not None:
                report(outcome.samples[-1])
            next_sample += _SAMPLE_EVERY_SECONDS
        t += plan.tick_seconds
        if t > plan.arrivals.end_seconds and (not waiting or outcome.sold_out_seconds):
            break  # drained, or sold out: nothing moves without a restock
    if waiting:
        outcome.drain_seconds = None
    return outcome


async def plan_launch(plan: Plan, report: Callable[[Sample], None] | None = None) -> Outcome:
    """Simulate ``plan`` with the room's own scripts, on a private Redis started (and
    stopped) for the purpose; ``report`` gets every sample."""
    idle = max(300, math.ceil(plan.session_seconds) + 1)  # shoppers keep their session busy
    with RedisServer() as server:
        engine = Engine(Redis.from_url(server.url), grace_seconds=plan.grace_seconds,
                        session_idle_seconds=idle, session_max_seconds=max(1800, idle))
        try:
            return await simulate(plan, engine, report)
        finally:
            await engine.aclose()


def summary(plan: Plan, outcome: Outcome) -> str:
    """The planner's report in words and a small table."""
    def minutes(seconds: float | None) -> str:
        return "never" if seconds is None else f"{seconds / 60:.1f} min"

    lines = [
        f"capacity {plan.capacity}, sessions of {plan.session_seconds / 60:g} min, "
        f"{plan.abandon_per_minute:.0%} of those waiting give up each minute"
        + (f", admission rate {plan.rate_per_minute}/min" if plan.rate_per_minute else ""),
        f"arrivals: {outcome.arrived}; admitted: {len(outcome.waits)}; gave up: "
        f"{outcome.abandoned}",
        f"longest line: {max((s.waiting for s in outcome.samples), default=0)} visitors",
        "wait per admitted arrival: " + ", ".join(
            f"p{round(q * 100)} {minutes(outcome.wait_percentile(q))}"
            for q in (0.5, 0.9, 0.99)),
        f"time to drain (last in line admitted): {minutes(outcome.drain_seconds)} "
        "after the first arrival",
        f"most sessions at once: {outcome.max_active} (capacity {plan.capacity})",
        *_stock_lines(plan, outcome, minutes),
        "",
    ]
    last = outcome.samples[-1].t / 60 if outcome.samples else 0
    every = next((k for k in (1, 2, 5, 10, 15, 30, 60, 120) if last / k <= 40), 240)
    lines.append(f"every {every} min:  minute  arrived  waiting  active  admitted  gave up")
    for sample in outcome.samples:
        if round(sample.t) % (every * 60) == 0 or sample is outcome.samples[-1]:
            lines.append(f"{'':14}{sample.t / 60:6.0f}  {sample.arrived:7d}  "
                         f"{sample.waiting:7d}  {sample.active:6d}  {sample.admitted:8d}  "
                         f"{sample.abandoned:7d}")
    return "\n".join(lines)


def _stock_lines(plan: Plan, outcome: Outcome,
                 minutes: Callable[[float | None], str]) -> list[str]:
    if plan.stock is None:
        return []
    if outcome.sold_out_seconds is None:
        return [f"stock {plan.stock} at {plan.sales_per_session:g} a session: it lasted"]
    return [f"stock {plan.stock} at {plan.sales_per_session:g} a session: sold out "
            f"{minutes(outcome.sold_out_seconds)} after the first arrival, "
            f"{len(outcome.waits)} admitted by then",
            f"told early (on joining: most likely to run out first): {outcome.told_unlikely}; "
            f"in line at the sell-out, told at once: {outcome.waiting_at_sell_out}; "
            f"arrived after it (sold-out page, no place): {outcome.turned_away}"]


def plot(plan: Plan, outcome: Outcome, path: str) -> None:
    """Draw who arrived, got in, waited and gave up, the sessions against capacity and
    the waits into a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    minutes = [s.t / 60 for s in outcome.samples]
    figure, (people, sessions, waits) = pyplot.subplots(3, 1, figsize=(8, 10))
    gave_up = outcome.abandoned / outcome.arrived if outcome.arrived else 0
    for values, colour, label in (
            ([s.arrived for s in outcome.samples], "#4a4a4a", "arrived (so far)"),
            ([s.admitted for s in outcome.samples], "#1a7f37", "let in (so far)"),
            ([s.abandoned for s in outcome.samples], "#b00020",
             f"gave up (so far; {gave_up:.0%} of arrivals)"),
            ([s.waiting for s in outcome.samples], "#0b5cad", "waiting now")):
        people.plot(minutes, values, color=colour, label=label)
    people.set_title("Visitors")
    people.legend()
    sessions.plot(minutes, [s.active for s in outcome.samples], color="#1a7f37",
                  label="active sessions")
    # The cap drawn over the sessions, dashed: a room running full still shows both.
    sessions.axhline(plan.capacity, color="#b00020", linestyle="--", label="capacity")
    sessions.set_ylim(0, plan.capacity * 1.15)
    sessions.set_title("Sessions")
    sessions.legend(loc="lower right")
    waits.hist([w / 60 for w in outcome.waits] or [0], bins=40, color="#8250df")
    waits.set_title("Wait per admitted arrival (minutes)")
    waits.set_ylabel("visitors")
    for axes in (people, sessions):
        axes.set_xlabel("minutes since the first arrival")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
