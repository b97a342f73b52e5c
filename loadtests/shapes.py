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

    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate now; None once the run's time is up."""
        assert self.runner is not None  # set by Locust before the first tick
        options = self.runner.environment.parsed_options
        done = self.get_run_time() / options.seconds
        return None if done >= 1 else self.users_at(done, options.base_users,
                                                     options.peak_users)

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
