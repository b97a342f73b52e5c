"""Admission rate measured from the room's admitted counter, the ETA it gives, and
how long admitted visitors waited."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from waitingroom.engine.line import LineView

_SAMPLE_EVERY_MS = 1000
ETA_MEASURED_SECONDS = 30
"""An ETA is given only from a rate measured over at least this long: the burst that
fills the room when it opens is no rate to promise a wait by."""
MEASURE_SECONDS = 60
MEASURE_ADMISSIONS = 10
"""The rate is measured over the last :data:`MEASURE_SECONDS`, or longer (up to the
window) until that span holds this many admissions: a small shop's few a minute would
make it jump with every one."""
_HAZARD_MIN_AHEAD = 20
"""Walk-aways are measured on a line at least this long (fewer say little)."""


class AdmissionRate:
    """Admissions per second, and how fast waiters leave the line otherwise, measured
    over a sliding window of Redis-time samples; the ETA they give.

    Every process samples the same room-wide counter and line, so all of them agree
    without any extra Redis traffic: samples ride on answers and looks already made.
    """

    def __init__(self, window_seconds: int = 600) -> None:
        self._window_ms = window_seconds * 1000
        self._samples: deque[tuple[int, int]] = deque()  # (Redis time, admitted so far)
        # (Redis time, an arrival number at the back of the line, how many were ahead)
        self._marks: deque[tuple[int, int, int]] = deque()
        self._rate: float | None = None
        self._span_ms = 0
        self._hazard = 0.0

    def observe(self, server_ms: int, admitted_total: int) -> None:
        """Record the room's admitted counter as read at Redis time ``server_ms``."""
        samples = self._samples
        if samples and (admitted_total < samples[-1][1] or server_ms < samples[-1][0]):
            self._reset()
        if samples and server_ms - samples[-1][0] < _SAMPLE_EVERY_MS:
            return
        samples.append((server_ms, admitted_total))
        while server_ms - samples[0][0] > self._window_ms:
            samples.popleft()
        self._measure()

    def _reset(self) -> None:
        """The room was reset (its counters went back): nothing measured holds."""
        self._samples.clear()
        self._marks.clear()
        self._rate, self._span_ms, self._hazard = None, 0, 0.0

    def _measure(self) -> None:
        samples = self._samples
        end_ms, end_count = samples[-1]
        start_ms, start_count = samples[0]
        for at_ms, count in reversed(samples):  # the shortest span that says enough
            start_ms, start_count = at_ms, count
            if (end_ms - at_ms >= MEASURE_SECONDS * 1000
                    and end_count - count >= MEASURE_ADMISSIONS):
                break
        self._span_ms = end_ms - start_ms
        self._rate = (end_count - start_count) * 1000 / self._span_ms if self._span_ms else None

    def observe_line(self, view: LineView) -> None:
        """Record a look at the line: the admitted counter, and how fast the line
        moves for reasons other than admissions (walk-aways ahead, skipped absentees)."""
        self.observe(view.server_ms, view.admitted_total)
        marks = self._marks
        if marks and view.end < marks[-1][1]:
            self._reset()
        if marks and view.server_ms - marks[-1][0] < _SAMPLE_EVERY_MS:
            return
        marks.append((view.server_ms, view.end, view.through(view.end)))
        while view.server_ms - marks[0][0] > self._window_ms:
            marks.popleft()
        self._hazard = self._measured_hazard(view)

    def _measured_hazard(self, view: LineView) -> float:
        # The back of the line as the rate's span began: those ahead of it left by
        # admission or otherwise; per waiter and second, the latter is the hazard.
        since = view.server_ms - self._span_ms
        at_ms, number, then = next((m for m in self._marks if m[0] >= since), self._marks[-1])
        seconds, rate = (view.server_ms - at_ms) / 1000, self._rate
        if seconds < ETA_MEASURED_SECONDS or rate is None or then < _HAZARD_MIN_AHEAD:
            return self._hazard
        now = view.through(number)
        left_otherwise = then - now - rate * seconds
        return max(0.0, left_otherwise / (seconds * (then + now) / 2))

    def per_second(self) -> float | None:
        """Admissions per second (see :data:`MEASURE_SECONDS`), or None before two
        samples."""
        return self._rate

    def eta_seconds(self, position: int) -> int | None:
        """Seconds until ``position`` reaches the door at the measured rate, less the
        time those ahead who will leave would have taken; None before the rate was
        measured over :data:`ETA_MEASURED_SECONDS`, or while nobody is let in."""
        rate = self._rate
        if not rate or self._span_ms < ETA_MEASURED_SECONDS * 1000:
            return None
        hazard = self._hazard
        if hazard <= 0:
            return math.ceil(position / rate)
        # Those ahead go in at ``rate`` and leave at ``hazard`` each: dp/dt = -rate -
        # hazard * p, which reaches 0 after this long.
        return math.ceil(math.log1p(hazard * position / rate) / hazard)


WAIT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
