"""Load shapes for the scenario files: a launch spike, a step ramp and a soak.

Each takes its figures from flags or the environment (``--seconds``/WR_LOAD_SECONDS,
``--base-users``/WR_LOAD_BASE_USERS, ``--peak-users``/WR_LOAD_PEAK_USERS). When its
time is up no new shopper arrives, and those still in line go on until they are
served (``DRAINING``), for at most ``--drain-seconds``; then the run stops.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape, events


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


DRAINING = False
"""Set once the run's time is up: a shopper finishing a visit starts no other."""
TARGET = 0
"""Shoppers the shape wants now. The crowd thins only between visits: a shopper who
finishes one while there are more than this starts no other (Locust never stops a
shopper in the middle of a visit, holding a session or a place)."""


class _Shape(LoadTestShape):
    abstract = True

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate now; once the run's time is up, the users left (each
        stops after its visit) until none is, or the drain time is up: then None."""
        global DRAINING, TARGET
        assert self.runner is not None  # set by Locust before the first tick
        options = self.runner.environment.parsed_options
        done = self.get_run_time() / options.seconds
        if done < 1:
            TARGET, rate = self.users_at(done, options.base_users, options.peak_users)
            return max(TARGET, self.runner.user_count), rate
        DRAINING = True
        left = self.runner.user_count
        over = self.get_run_time() >= options.seconds + options.drain_seconds
        return None if left == 0 or over else (left, max(1, options.peak_users))

    def users_at(self, done: float, base: int, peak: int) -> tuple[int, float]:
        """Users and spawn rate when ``done`` (0-1) of the run has passed."""
        raise NotImplementedError


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
