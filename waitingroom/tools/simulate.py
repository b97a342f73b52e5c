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
from collections.abc import Callable

from redis.asyncio import Redis

from waitingroom.engine import Engine, VisitState
from waitingroom.room.chance import chance_of
from waitingroom.room.eta import AdmissionRate
from waitingroom.status import poll_interval
from waitingroom.tickets import new_visitor_id
from waitingroom.tools.plan import Outcome, Plan, Sample, units_bought
from waitingroom.tools.redis_server import RedisServer

_ROOM = "simulated"
_START_MS = 1_000_000_000_000  # any fixed epoch: only differences matter
_SAMPLE_EVERY_SECONDS = 1.0


async def simulate(plan: Plan, engine: Engine,
                   report: Callable[[Sample], None] | None = None) -> Outcome:
    """Run ``plan`` through ``engine`` (on a Redis of its own: the room's keys are
    replaced) in simulated time; ``report`` gets every sample as it is taken."""
    await engine.rooms.clear(_ROOM)
    await engine.rooms.configure(_ROOM, capacity=plan.capacity, rate=plan.rate_per_minute,
                                 stock=plan.stock)
    run = _Run(plan, engine)
    while run.t <= plan.max_hours * 3600:
        await run.step(report)
        if run.over():
            break
    if run.waiting:
        run.outcome.drain_seconds = None
    return run.outcome


class _Run:
    """One simulated launch against the room's scripts, tick by tick."""

    def __init__(self, plan: Plan, engine: Engine) -> None:
        self.plan, self.engine = plan, engine
        self.rng = random.Random(plan.seed)
        self.hazard = plan.give_up_hazard
        self.outcome = Outcome()
        # (next poll, arrived, gives up, id, arrival number of the place held)
        self.polls: list[tuple[float, float, float, str, int]] = []
        self.sessions: list[tuple[float, str]] = []  # (release at, session id)
        self.waiting = 0
        self.stock_left = plan.stock
        self.rate = AdmissionRate()  # as the gates measure it: their advice to poll follows
        self.next_sample = 0.0
        self.t = 0.0

    async def step(self, report: Callable[[Sample], None] | None) -> None:
        """One tick: the clock, planned changes, sessions ending (and buying), arrivals,
        the polls due, a sample."""
        plan, t = self.plan, self.t
        await self.engine.rooms.set_clock(_ROOM, _START_MS + round(t * 1000))
        for step in plan.steps_due(t - plan.tick_seconds if t else -1.0, t):
            await self.engine.rooms.configure(_ROOM, capacity=step.capacity,
                                              rate=step.rate_per_minute, stock=step.stock)
            if step.stock:
                self.stock_left = step.stock
        await self._end_sessions()
        for _ in range(round(plan.arrivals.expected(t + plan.tick_seconds))
                       - self.outcome.arrived):
            patience = self.rng.expovariate(self.hazard) if self.hazard > 0 else math.inf
            heapq.heappush(self.polls, (t, t, t + patience, new_visitor_id(), 0))
            self.outcome.arrived += 1
            self.waiting += 1
        await self._poll()
        if t >= self.next_sample:
            await self._sample(report)
        self.t += plan.tick_seconds

    def over(self) -> bool:
        """Drained, or sold out with no restock to come, once arrivals have ended."""
        plan = self.plan
        return self.t > plan.arrivals.end_seconds and (
            not self.waiting or self.stock_left == 0) and not plan.steps_due(
                self.t - plan.tick_seconds, math.inf)  # (none still to apply)

    async def _end_sessions(self) -> None:
        due_releases = []
        while self.sessions and self.sessions[0][0] <= self.t:
            due_releases.append(heapq.heappop(self.sessions)[1])
        await asyncio.gather(*(self.engine.release(_ROOM, s) for s in due_releases))
        if self.plan.stock is not None:  # each session buys as it ends, as the origin says
            for _ in due_releases:
                left = await self.engine.stock.sold(
                    _ROOM, units_bought(self.rng, self.plan.sales_per_session))
                if left == 0 and self.outcome.sold_out_seconds is None:
                    self.outcome.sold_out_seconds = self.t
                    self.outcome.waiting_at_sell_out = self.waiting
            self.stock_left = (await self.engine.rooms.config(_ROOM)).stock

    async def _poll(self) -> None:
        """The waiters whose poll is due ask; each is let in, told again, or gone."""
        plan, t, outcome = self.plan, self.t, self.outcome
        due = []
        while self.polls and self.polls[0][0] <= t:
            waiter = heapq.heappop(self.polls)
            if waiter[2] <= t:  # stops asking; the room drops the place after the grace
                outcome.abandoned += 1
                self.waiting -= 1
            else:
                due.append(waiter)
        visits = await asyncio.gather(*(self.engine.visit(_ROOM, w[3], number=w[4])
                                        for w in due))
        for (_, arrived, gives_up, visitor_id, number), visit in zip(due, visits, strict=True):
            self.rate.observe(visit.server_ms, visit.admitted_total)
            if visit.state is VisitState.NO_PLACE:  # sold out: the page, no place
                outcome.turned_away += 1
                self.waiting -= 1
                continue
            if plan.stock is not None and number == 0 and visit.position and chance_of(
                    visit.position, stock=self.stock_left or 0, active=len(self.sessions),
                    sales_per_session=plan.sales_per_session).level == "unlikely":
                outcome.told_unlikely += 1  # told on joining, as the room tells them
            if visit.state is VisitState.ADMITTED:
                self.waiting -= 1
                outcome.waits.append(t - arrived)
                outcome.drain_seconds = t
                heapq.heappush(self.sessions, (t + plan.session_seconds, visitor_id))
            else:
                next_poll = t + poll_interval(visit.position, plan.grace_seconds,
                                              self.rate.per_second())
                heapq.heappush(self.polls,
                               (next_poll, arrived, gives_up, visitor_id, visit.number))

    async def _sample(self, report: Callable[[Sample], None] | None) -> None:
        counts = await self.engine.rooms.counts(_ROOM)
        outcome = self.outcome
        outcome.max_active = max(outcome.max_active, counts.active)
        outcome.samples.append(Sample(self.t, outcome.arrived, counts.waiting, counts.active,
                                      len(outcome.waits), outcome.abandoned))
        if report is not None:
            report(outcome.samples[-1])
        self.next_sample += _SAMPLE_EVERY_SECONDS


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
        *_origin_lines(plan, outcome),
        *(f"planned at minute {step.minute:g}: " + ", ".join(
            f"{name} {value}" for name, value in (
                ("capacity", step.capacity), ("rate/min", step.rate_per_minute),
                ("stock", step.stock)) if value is not None)
          for step in sorted(plan.steps, key=lambda s: s.minute)),
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


def _origin_lines(plan: Plan, outcome: Outcome) -> list[str]:
    if plan.origin is None:
        return []
    minutes = (outcome.samples[-1].t / 60) if outcome.samples else 0
    lines = [f"origin (knee {plan.origin.knee} sessions, answers in "
             f"{plan.origin.answer_ms:g} ms at full speed): {outcome.completed} sessions "
             f"served, {outcome.completed / max(minutes, 1 / 60):.1f}/min; answer time p50 "
             f"{outcome.answer_percentile(0.5) or 0:.0f} ms, p95 "
             f"{outcome.answer_percentile(0.95) or 0:.0f} ms"]
    if plan.adaptive is not None:
        caps = [s.capacity for s in outcome.samples[-600:]]  # the last ten minutes
        lines.append(f"adaptive capacity ({plan.adaptive[0]}-{plan.adaptive[1]}): ended at "
                     f"{caps[-1] if caps else plan.capacity}, between {min(caps, default=0)} "
                     f"and {max(caps, default=0)} over the last ten minutes")
    return lines


def _stock_lines(plan: Plan, outcome: Outcome,
                 minutes: Callable[[float | None], str]) -> list[str]:
    if plan.stock is None:
        return []
    if outcome.sold_out_seconds is None:
        return [f"stock {plan.stock} at {plan.sales_per_session:g} a session: it lasted"]
    return [f"stock {plan.stock} at {plan.sales_per_session:g} a session: sold out "
            f"{minutes(outcome.sold_out_seconds)} after the first arrival",
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
