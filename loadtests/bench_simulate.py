"""How much faster than real time the capacity planner plays a launch: the quick
model (the default) and the room's own scripts on a private Redis (``--exact``), on
the README's example and on a 20,000-visitor launch. Goal: 100x real time or more
for the 20,000-visitor launch (the default planner).

Usage: python loadtests/bench_simulate.py [--exact]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable

from waitingroom.tools.model import model_launch
from waitingroom.tools.plan import ArrivalCurve, Outcome, Plan
from waitingroom.tools.simulate import plan_launch

LAUNCHES = {
    "README example (79,000 arrivals)": Plan(
        ArrivalCurve.parse("0:0,1:20000,5:2000,30:0"), capacity=500, session_seconds=240,
        abandon_per_minute=0.02),
    "20,000-visitor launch": Plan(
        ArrivalCurve.parse("0:0,1:10000,3:0"), capacity=300, session_seconds=180,
        abandon_per_minute=0.02),
}
GOAL = 100.0


def _timed(run: Callable[[], Outcome]) -> tuple[Outcome, float]:
    started = time.perf_counter()
    outcome = run()
    return outcome, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exact", action="store_true",
                        help="also time the exact planner (minutes)")
    args = parser.parse_args()
    speeds = {}
    for name, plan in LAUNCHES.items():
        quick, seconds = _timed(lambda plan=plan: model_launch(plan))
        simulated = quick.samples[-1].t
        speeds[name] = simulated / seconds
        print(f"{name}: {simulated / 60:.0f} simulated minutes; quick model "
              f"{seconds:.2f} s ({speeds[name]:,.0f}x real time)")
        if args.exact:
            exact, seconds = _timed(lambda plan=plan: asyncio.run(plan_launch(plan)))
            print(f"  exact (the room's scripts): {seconds:.1f} s "
                  f"({exact.samples[-1].t / seconds:,.0f}x real time)")
    met = speeds["20,000-visitor launch"] >= GOAL
    print(f"goal quick planner >= {GOAL:g}x real time for 20,000 visitors: "
          f"{'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
