"""Load shapes for the scenario files: a launch spike, a step ramp and a soak.

Each takes its figures from flags or the environment (``--seconds``/WR_LOAD_SECONDS,
``--base-users``/WR_LOAD_BASE_USERS, ``--peak-users``/WR_LOAD_PEAK_USERS), and stops
the run when its time is up.
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


class _Shape(LoadTestShape):
    abstract = True

    def figures(self) -> tuple[float, int, int]:
        """The run's length, base users and peak users."""
        assert self.runner is not None  # set by Locust before the first tick
        options = self.runner.environment.parsed_options
        return options.seconds, options.base_users, options.peak_users


class LaunchSpike(_Shape):
    """Idle, then ten times the shoppers within seconds of the launch, then a decay:
    10% of the run at the base, a jump to the peak, held for 30%, then a straight
    line back down to the base."""

    abstract = False

    def tick(self) -> tuple[int, float] | None:
        seconds, base, peak = self.figures()
        t = self.get_run_time()
        if t >= seconds:
            return None
        if t < 0.1 * seconds:
            return base, base
        if t < 0.4 * seconds:
            return peak, peak / 3  # the whole crowd within about three seconds
        share = (t - 0.4 * seconds) / (0.6 * seconds)
        return round(peak - (peak - base) * share), peak / 3


class StepRamp(_Shape):
    """From the base to the peak in five equal steps, each held a fifth of the run:
    where does the poll's p99 or the error rate turn?"""

    abstract = False

    def tick(self) -> tuple[int, float] | None:
        seconds, base, peak = self.figures()
        t = self.get_run_time()
        if t >= seconds:
            return None
        step = min(4, int(t / (seconds / 5)))
        return base + (peak - base) * step // 4, max(1, (peak - base) / 4)


class Soak(_Shape):
    """The peak, held for the whole run: does anything grow that should not?"""

    abstract = False

    def tick(self) -> tuple[int, float] | None:
        seconds, _, peak = self.figures()
        if self.get_run_time() >= seconds:
            return None
        return peak, max(1, peak / 10)
