"""How far the queue page's estimate is from the wait it foretells, for launches of
shoppers who arrive in a rush, close their tabs and walk away, on the room's own
scripts (a private Redis, simulated time: minutes of launch in seconds).

Every waiter asks where it stands at the interval the room advises and is told an
estimate (``eta_seconds``) as the room's processes make it, from their looks at the
line twice a second. Each estimate is scored when its waiter gets in:
``|estimate - actual| / max(actual, 60 s)`` (the page says "less than a minute" below
one), weighted by how long the waiter saw it (until its next poll). Only estimates
told once a minute of admissions has been seen count. Goal: median error 20% or
less, p90 50% or less, in every launch.

Shoppers: arrivals by a curve; sessions of a spread of lengths (gamma, shape 2);
tab-closers give up at a constant rate a minute (two in three send the page's
closing beacon, the rest go silent, as a phone that kills a tab), and a share of those
admitted never come (their slot goes by after the claim window).

Usage: python loadtests/eta.py [--launch NAME] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import sys
from collections import deque
from dataclasses import dataclass, field

from redis.asyncio import Redis

from waitingroom.engine import Engine, VisitState
from waitingroom.engine.line import LineView
from waitingroom.room.eta import ETA_MEASURED_SECONDS, AdmissionRate
from waitingroom.status import poll_interval
from waitingroom.tickets import new_visitor_id
from waitingroom.tools.plan import ArrivalCurve
from waitingroom.tools.redis_server import RedisServer

_ROOM = "eta"
_START_MS = 1_000_000_000_000
_GRACE = 60
_FLOOR_SECONDS = 60.0
"""Errors are relative to the actual wait, or to a minute if it was shorter."""
GOALS = {0.5: 0.20, 0.9: 0.50}


@dataclass(frozen=True, slots=True)
class Launch:
    """One launch's shoppers and room."""

    arrivals: str
    capacity: int
    session_seconds: float
    """Mean session length (gamma, shape 2)."""
    give_up_per_minute: float
    rate_per_minute: int = 0
    no_show: float = 0.05
    """Share of those let in who never come (their slot goes by)."""


LAUNCHES = {
    "rush": Launch("0:0,0.5:4000,2:600,10:100,14:0", capacity=150, session_seconds=120,
                   give_up_per_minute=0.04),
    "rate-bound": Launch("0:0,0.5:3000,3:300,12:0", capacity=5000, session_seconds=300,
                         give_up_per_minute=0.03, rate_per_minute=150),
    "small shop": Launch("0:0,0.5:240,3:40,10:0", capacity=3, session_seconds=30,
                         give_up_per_minute=0.05),
}


class PlainRate:
    """The estimate before calibration (the room's until issue 31): the place in line
    over the admissions of the last minute."""

    def __init__(self) -> None:
        self.samples: deque[tuple[int, int]] = deque()  # (Redis time, admitted so far)

    def look(self, view: LineView) -> None:
        self.samples.append((view.server_ms, view.admitted_total))
        while view.server_ms - self.samples[0][0] > 60_000:
            self.samples.popleft()

    def eta_seconds(self, position: int) -> int | None:
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 - t0 < ETA_MEASURED_SECONDS * 1000 or n1 == n0:
            return None
        return math.ceil(position / ((n1 - n0) * 1000 / (t1 - t0)))


class RoomEstimate:
    """The estimate as the room makes it."""

    def __init__(self) -> None:
        self.rate = AdmissionRate()

    def look(self, view: LineView) -> None:
        self.rate.observe_line(view)

    def eta_seconds(self, position: int) -> int | None:
        return self.rate.eta_seconds(position)


ESTIMATES: dict[str, type[PlainRate | RoomEstimate]] = {
    "before (place / rate)": PlainRate, "now (the room's)": RoomEstimate}


@dataclass
class _Waiter:
    visitor_id: str
    arrived: float
    gives_up: float
    beacon: bool
    number: int = 0
    told: list[tuple[float, *tuple[int | None, ...]]] = field(default_factory=list)
    """(when, then the estimate by each estimator: None before it has one)."""


@dataclass
class Scores:
    """Weighted errors of one estimator."""

    errors: list[tuple[float, float]] = field(default_factory=list)
    """(signed error: above 0 when the wait was shorter than foretold, weight)."""
    unknown_weight: float = 0.0

    def percentile(self, q: float, *, signed: bool = False) -> float:
        """The weighted ``q`` percentile of the errors (their sizes, or signed)."""
        ordered = sorted((e if signed else abs(e), w) for e, w in self.errors)
        total = sum(w for _, w in ordered)
        running = 0.0
        for error, weight in ordered:
            running += weight
            if running >= q * total:
                return error
        return math.nan

    def shown_share(self) -> float:
        known = sum(w for _, w in self.errors)
        return known / (known + self.unknown_weight) if known else 0.0


async def run_launch(launch: Launch, seed: int) -> tuple[dict[str, Scores], int]:
    """Play ``launch``; the estimators' scores and how many got in."""
    rng = random.Random(seed)
    curve = ArrivalCurve.parse(launch.arrivals)
    hazard = -math.log(1 - launch.give_up_per_minute) / 60
    with RedisServer() as server:
        engine = Engine(Redis.from_url(server.url), grace_seconds=_GRACE,
                        session_idle_seconds=3600, session_max_seconds=7200)
        try:
            await engine.rooms.configure(_ROOM, capacity=launch.capacity,
                                         rate=launch.rate_per_minute)
            return await _play(engine, launch, curve, hazard, rng)
        finally:
            await engine.aclose()


async def _play(engine: Engine, launch: Launch, curve: ArrivalCurve, hazard: float,
                rng: random.Random) -> tuple[dict[str, Scores], int]:
    estimators = [make() for make in ESTIMATES.values()]
    room = estimators[-1]
    assert isinstance(room, RoomEstimate)
    scores = {name: Scores() for name in ESTIMATES}
    polls: list[tuple[float, int, _Waiter]] = []
    sessions: list[tuple[float, str]] = []
    arrived = admitted = order = 0
    first_admission: float | None = None
    t = 0.0
    while t < 4 * 3600:
        await engine.rooms.set_clock(_ROOM, _START_MS + round(t * 1000))
        ending = []
        while sessions and sessions[0][0] <= t:
            ending.append(heapq.heappop(sessions)[1])
        await asyncio.gather(*(engine.release(_ROOM, s) for s in ending))
        for _ in range(round(curve.expected(t + 1)) - arrived):
            arrived += 1
            order += 1
            patience = rng.expovariate(hazard) if hazard else math.inf
            waiter = _Waiter(new_visitor_id(), t, t + patience,
                             rng.random() < 2 / 3)
            heapq.heappush(polls, (t, order, waiter))
        due: list[_Waiter] = []
        while polls and polls[0][0] <= t:
            waiter = heapq.heappop(polls)[2]
            if waiter.gives_up <= t:
                if waiter.beacon and waiter.number:
                    await engine.hide(_ROOM, waiter.visitor_id, waiter.number)
                continue
            due.append(waiter)
        visits = await asyncio.gather(*(engine.visit(_ROOM, w.visitor_id, number=w.number)
                                        for w in due))
        for waiter, visit in zip(due, visits, strict=True):
            if visit.state is VisitState.ADMITTED:
                admitted += 1
                first_admission = t if first_admission is None else first_admission
                _score(waiter, t, scores, first_admission)
                length = 0.0 if rng.random() < launch.no_show else rng.gammavariate(
                    2, launch.session_seconds / 2)
                heapq.heappush(sessions, (t + length, waiter.visitor_id))
                continue
            waiter.number = visit.number
            waiter.told.append((t, *(e.eta_seconds(visit.position) for e in estimators)))
            order += 1
            after = poll_interval(visit.position, _GRACE, room.rate.per_second())
            heapq.heappush(polls, (t + after, order, waiter))
        for _ in range(2):  # a process's looks, twice a second
            view = await engine.watch(_ROOM)
            for estimator in estimators:
                estimator.look(view)
        if t > curve.end_seconds and not polls:
            break
        t += 1.0
    return scores, admitted


def _score(waiter: _Waiter, admitted_at: float, scores: dict[str, Scores],
           first_admission: float) -> None:
    told = waiter.told
    for i, (when, *estimates) in enumerate(told):
        if when < first_admission + 60:
            continue
        shown = (told[i + 1][0] if i + 1 < len(told) else admitted_at) - when
        actual = admitted_at - when
        for score, estimate in zip(scores.values(), estimates, strict=True):
            if estimate is None:
                score.unknown_weight += shown
            else:
                score.errors.append(
                    ((estimate - actual) / max(actual, _FLOOR_SECONDS), shown))


def report(name: str, launch: Launch, scores: dict[str, Scores], admitted: int) -> bool:
    """Print one launch's figures; True if the room's estimate met the goals."""
    print(f"{name}: {launch.arrivals} arrivals/min, capacity {launch.capacity}, sessions "
          f"~{launch.session_seconds:g} s, {launch.give_up_per_minute:.0%}/min give up"
          + (f", rate {launch.rate_per_minute}/min" if launch.rate_per_minute else "")
          + f"; {admitted} let in")
    met = True
    for estimator, score in scores.items():
        figures = {q: score.percentile(q) for q in GOALS}
        print(f"  {estimator:24} median error {figures[0.5]:6.1%}, p90 {figures[0.9]:6.1%}"
              f"; typical bias {score.percentile(0.5, signed=True):+.0%} (estimate shown "
              f"{score.shown_share():.0%} of the waiting time)")
        if estimator == list(scores)[-1]:
            met = all(figures[q] <= goal for q, goal in GOALS.items())
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", choices=sorted(LAUNCHES), action="append",
                        help="one launch (repeatable; default: all)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    met = True
    for name in args.launch or LAUNCHES:
        scores, admitted = asyncio.run(run_launch(LAUNCHES[name], args.seed))
        met = report(name, LAUNCHES[name], scores, admitted) and met
    print("goals (median <= 20%, p90 <= 50%):", "met" if met else "NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
