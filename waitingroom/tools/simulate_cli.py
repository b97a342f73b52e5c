"""``waitingroom simulate``: the capacity planner's command line (the quick model, or
with ``--exact`` the room's own scripts on a private Redis)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from waitingroom.tools.plan import ArrivalCurve, OriginModel, Plan, PlannedStep


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` to the ``waitingroom`` command's parser: the launch to play,
    and how."""
    simulate = commands.add_parser(
        "simulate", help="capacity planner: run the admission engine in simulated time",
        description="Plays a launch in simulated time, by the room's admission rules "
                    "(or, with --exact, its own scripts on a private Redis), and prints "
                    "the line, the waits, who gave up and the time to drain.")
    simulate.add_argument("--arrivals", required=True, metavar="CURVE",
                          help="MINUTE:ARRIVALS_PER_MINUTE points joined by straight lines, "
                               "e.g. 0:0,1:20000,5:2000,30:0")
    simulate.add_argument("--capacity", type=int, required=True,
                          help="concurrent sessions the order flow can serve")
    simulate.add_argument("--session-minutes", type=float, required=True,
                          help="how long an admitted shopper holds a session")
    simulate.add_argument("--abandon-rate", type=float, default=0.0,
                          help="share of those waiting who give up each minute (0-1)")
    simulate.add_argument("--rate", type=int, default=0,
                          help="admission rate limit per minute (0: none)")
    simulate.add_argument("--grace-seconds", type=int, default=60)
    simulate.add_argument("--tick-seconds", type=float, default=1.0,
                          help="simulated time step")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--stock", type=int, help="units on sale: when they sell out, "
                          "how many were let in, told early, turned away")
    simulate.add_argument("--step", action="append", default=[], metavar="MINUTE:CHANGES",
                          help="a planned change, e.g. 30:capacity=800,rate=2000 or "
                               "45:stock=2000 (a restock); repeat for more")
    simulate.add_argument("--sales-per-session", type=float, default=1.0,
                          help="units an admitted shopper buys, on average")
    simulate.add_argument("--origin-knee", type=int, metavar="N",
                          help="the order system serves N sessions at full speed and slows "
                               "(and loses work to contention) past them")
    simulate.add_argument("--origin-answer-ms", type=float, default=200.0,
                          help="an answer's time at full speed (with --origin-knee)")
    simulate.add_argument("--adaptive", metavar="MIN:MAX",
                          help="adaptive capacity between MIN and MAX, learning the knee "
                               "from the answers (needs --origin-knee; quick model only)")
    simulate.add_argument("--exact", action="store_true",
                          help="run the room's own Lua scripts on a private Redis (minutes "
                               "for a long launch) instead of the quick model of the same "
                               "rules (seconds; checked against the scripts by the tests)")
    simulate.add_argument("--plot", metavar="FILE.png",
                          help="also draw the results (needs matplotlib: "
                               "pip install 'waitingroom[load]')")


def run(args: argparse.Namespace) -> int:
    """Plan the launch ``args`` describe and print what it comes to; 0 if the line
    drained (or the stock sold out), 1 if not, 2 for a bad argument."""
    from waitingroom.tools import model, simulate

    try:
        if args.exact and (args.adaptive or args.origin_knee):
            raise ValueError("--origin-knee and --adaptive are modelled by the quick model "
                             "only, not --exact")
        plan = Plan(
            ArrivalCurve.parse(args.arrivals), capacity=args.capacity,
            session_seconds=args.session_minutes * 60, abandon_per_minute=args.abandon_rate,
            rate_per_minute=args.rate, grace_seconds=args.grace_seconds,
            tick_seconds=args.tick_seconds, seed=args.seed, stock=args.stock,
            sales_per_session=args.sales_per_session,
            steps=tuple(PlannedStep.parse(step) for step in args.step),
            origin=None if args.origin_knee is None else OriginModel(
                args.origin_knee, args.origin_answer_ms),
            adaptive=None if args.adaptive is None else _bounds(args.adaptive))
    except ValueError as exc:
        print(f"waitingroom: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    if args.exact:
        try:
            outcome = asyncio.run(simulate.plan_launch(plan, _Progress(plan, started)))
        except ValueError as exc:  # a value the room itself refuses (a capacity past 10M)
            print(f"waitingroom: {exc}", file=sys.stderr)
            return 2
    else:
        outcome = model.model_launch(plan)
    how = "the room's own scripts" if args.exact else "the quick model (--exact: the scripts)"
    print(simulate.summary(plan, outcome))
    print(f"planned in {time.monotonic() - started:.1f} s by {how}")
    if args.plot:
        simulate.plot(plan, outcome, args.plot)
        print(f"plot written to {args.plot}")
    return 0 if outcome.drain_seconds is not None or outcome.sold_out_seconds else 1


class _Progress:
    """Says how an exact simulation is going, every few seconds, on standard error."""

    def __init__(self, plan: Any, started: float) -> None:
        self._arrivals_end = plan.arrivals.end_seconds
        self._started = self._last = started

    def __call__(self, sample: Any) -> None:
        now = time.monotonic()
        if now - self._last < 5:
            return
        self._last = now
        speed = sample.t / max(now - self._started, 1e-9)
        left = (f"; arrivals end in {(self._arrivals_end - sample.t) / speed:.0f} s"
                if sample.t < self._arrivals_end else "; draining")
        print(f"  simulated {sample.t / 60:.0f} min ({speed:.0f}x real time): "
              f"{sample.waiting} waiting, {sample.admitted} let in{left}",
              file=sys.stderr, flush=True)


def _bounds(text: str) -> tuple[int, int]:
    low, colon, high = text.partition(":")
    if not (colon and low.isdigit() and high.isdigit()):
        raise ValueError(f"--adaptive must be MIN:MAX, like 10:400, not {text!r}")
    return int(low), int(high)
