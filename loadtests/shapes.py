"""Load shapes for the scenario files: a launch spike, a step ramp and a soak.

Each takes its figures from flags or the environment (``--seconds``/WR_LOAD_SECONDS,
``--base-users``/WR_LOAD_BASE_USERS, ``--peak-users``/WR_LOAD_PEAK_USERS). When its
time is up no new shopper arrives, and those still in line go on until they are
served (``DRAINING``), for at most ``--drain-seconds``; then the run stops.

Run distributed (``--master`` and ``--worker`` processes), the shape runs on the master
only: it tells every worker the plan (``wr_plan``: its share of the target, and whether
the run is draining) as it changes, so each worker's shoppers thin out as the master's
would.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--seconds", type=float, env_var="WR_LOAD_SECONDS", default=60,
                        help="length of the run")
    parser.add_argument("--base-users", type=int, env_var="WR_LOAD_BASE_USERS", default=10,
                        help="shoppers before the launch (and at the end of a spike)")
    parser.add_argument("--peak-users", type=int, env_var="WR_LOAD_PEAK_USERS", default=100,
                        help="shoppers at the peak (10x the base for a launch)")
    parser.add_argument("--drain-seconds", type=float, env_var="WR_LOAD_DRAIN", default=120,
                        help="after the run, how long those still in line may take to be "
                             "served (no new shoppers meanwhile)")


class _NoSpawnRateWarning(logging.Filter):
    """Locust warns of a spawn rate over 100/s at every change of the shape's tick (64
    times in ``make soak``, burying the progress lines): these shapes ask for that rate
    on purpose (a launch is a spike), so the warning says nothing here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "spawn rate is very high" not in record.getMessage()


logging.getLogger("locust.runners").addFilter(_NoSpawnRateWarning())


DRAINING = False
"""Set once the run's time is up: a shopper finishing a visit starts no other."""
TARGET = 0
"""Shoppers the shape wants now. The crowd thins only between visits: a shopper who
finishes one while there are more than this starts no other (Locust never stops a
shopper in the middle of a visit, holding a session or a place)."""


@events.init.add_listener
def _hear_the_plan(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message("wr_plan", _planned)


def _planned(msg: Any, **_: Any) -> None:
    """On a worker: the master's plan, this worker's share of it."""
    global DRAINING, TARGET
    TARGET, DRAINING = msg.data["target"], msg.data["draining"]


class _Shape(LoadTestShape):
    abstract = True
    _told: tuple[int, bool, int] | None = None

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate now; once the run's time is up, the users left (each
        stops after its visit) until none is, or the drain time is up: then None."""
        global DRAINING, TARGET
        assert self.runner is not None  # set by Locust before the first tick
        options = self.runner.environment.parsed_options
        done = self.get_run_time() / options.seconds
        if done < 1:
            TARGET, rate = self.users_at(done, options.base_users, options.peak_users)
            self._tell_workers()
            return max(TARGET, self.runner.user_count), rate
        DRAINING = True
        self._tell_workers()
        left = self.runner.user_count
        over = self.get_run_time() >= options.seconds + options.drain_seconds
        return None if left == 0 or over else (left, max(1, options.peak_users))

    def users_at(self, done: float, base: int, peak: int) -> tuple[int, float]:
        """Users and spawn rate when ``done`` (0-1) of the run has passed."""
        raise NotImplementedError

    def _tell_workers(self) -> None:
        """On a master: each worker's share of the target (Locust spreads users evenly),
        and whether the run drains, whenever either changes."""
        runner = self.runner
        if not isinstance(runner, MasterRunner) or not runner.worker_count:
            return
        plan = (math.ceil(TARGET / runner.worker_count), DRAINING, runner.worker_count)
        if plan != self._told:
            self._told = plan
            runner.send_message("wr_plan", {"target": plan[0], "draining": plan[1]})


class LaunchSpike(_Shape):
    """Idle, then ten times the shoppers within seconds of the launch, then a decay:
    10% of the run at the base, a jump to the peak, held for 30%, then a straight
    line back down to the base."""

    abstract = False

    def users_at(self, done: float, base: int, peak: int) -> tuple[int, float]:
        if done < 0.1:
            return base, base
        if done < 0.4:
            return peak, peak / 3  # the whole crowd within about three seconds
        return round(peak - (peak - base) * (done - 0.4) / 0.6), peak / 3


class StepRamp(_Shape):
    """From the base to the peak in five equal steps, each held a fifth of the run:
    where does the poll's p99 or the error rate turn?"""

    abstract = False

    def users_at(self, done: float, base: int, peak: int) -> tuple[int, float]:
        step = min(4, int(done * 5))
        return base + (peak - base) * step // 4, max(1, (peak - base) / 4)


class Soak(_Shape):
    """The peak, held for the whole run: does anything grow that should not?"""

    abstract = False

    def users_at(self, done: float, base: int, peak: int) -> tuple[int, float]:
        return peak, max(1, peak / 10)
