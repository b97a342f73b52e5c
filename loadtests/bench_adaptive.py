"""Adaptive capacity against a capacity guessed wrong, on the same origin model: an
order system that serves 300 sessions at full speed and, past them, slows every answer
in proportion and loses work to contention (``OriginModel``: half of it per knee's
worth over). A launch of 20,000 in ten minutes keeps a line for the whole hour
measured. Each run plays the room's admission rules and, for adaptive, the room's own
decision rule (``waitingroom.room.adaptive.decide``, every 5 s) in the capacity
planner's quick model.

Reported per run: goodput (sessions served per minute over the hour), the origin's
answer time (p50/p95) and the median wait. Goals: adaptive, whichever side it
starts from, serves at least 95% of the best fixed guess (the knee itself) and at
least 1.5x the 50%-too-low guess, with a p95 answer time at most 0.8x the
50%-too-high guess's (started too high, it cannot end sessions to get down: it
admits fewer until enough have ended).

Usage: python loadtests/bench_adaptive.py
"""

from __future__ import annotations

import dataclasses
import time

from waitingroom.tools.model import model_launch
from waitingroom.tools.plan import ArrivalCurve, OriginModel, Outcome, Plan

KNEE = 300
HOUR = 3600.0
LAUNCH = Plan(ArrivalCurve.parse("0:0,1:4000,10:0"), capacity=KNEE, session_seconds=180,
              abandon_per_minute=0.02, origin=OriginModel(KNEE, answer_ms=200.0),
              max_hours=HOUR / 3600)
RUNS = {
    "fixed 150 (50% too low)": {"capacity": KNEE // 2},
    "fixed 450 (50% too high)": {"capacity": KNEE * 3 // 2},
    "fixed 300 (the knee, known)": {"capacity": KNEE},
    "adaptive 10-2000, from 150": {"capacity": KNEE // 2, "adaptive": (10, 2000)},
    "adaptive 10-2000, from 450": {"capacity": KNEE * 3 // 2, "adaptive": (10, 2000)},
}


def measured(outcome: Outcome) -> tuple[float, float, float, float]:
    """Goodput (sessions/min), answer time p50 and p95 (ms), median wait (min)."""
    return (outcome.completed / (HOUR / 60), outcome.answer_percentile(0.5) or 0.0,
            outcome.answer_percentile(0.95) or 0.0, (outcome.wait_percentile(0.5) or 0) / 60)


def main() -> int:
    """Play every run; print the table; 0 if the goals are met."""
    results = {}
    print(f"{'run':30} {'served/min':>10} {'p50 ms':>7} {'p95 ms':>7} {'wait p50':>9}")
    for name, changes in RUNS.items():
        started = time.perf_counter()
        results[name] = measured(model_launch(dataclasses.replace(LAUNCH, **changes)))
        goodput, p50, p95, wait = results[name]
        print(f"{name:30} {goodput:10.1f} {p50:7.0f} {p95:7.0f} {wait:8.1f}m"
              f"  ({time.perf_counter() - started:.1f} s)")
    best, low = results["fixed 300 (the knee, known)"], results["fixed 150 (50% too low)"]
    high = results["fixed 450 (50% too high)"]
    met = True
    for name in (name for name in RUNS if "adaptive" in name):
        goodput, _, p95, _ = results[name]
        print(f"{name}: {goodput / best[0]:.2f}x the knee's goodput, {goodput / low[0]:.2f}x "
              f"too low's, {goodput / high[0]:.2f}x too high's; p95 {p95 / high[2]:.2f}x "
              "too high's")
        met = met and goodput >= 0.95 * best[0] and goodput >= 1.5 * low[0] and (
            p95 <= 0.8 * high[2])
    print("goals met" if met else "GOALS NOT MET")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
