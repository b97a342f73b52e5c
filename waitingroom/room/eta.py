"""Admission rate measured from the room's admitted counter, the ETA it gives, and
how long admitted visitors waited."""

from __future__ import annotations

import math
from collections import deque

_SAMPLE_EVERY_MS = 1000
ETA_MEASURED_SECONDS = 30
"""An ETA is given only from a rate measured over at least this long: the burst that
fills the room when it opens is no rate to promise a wait by."""


class AdmissionRate:
    """Admissions per second over a sliding window of Redis-time samples.

    Every process samples the same room-wide counter, so all of them agree on the
    rate without any extra Redis traffic: samples ride on answers already fetched.
    """

    def __init__(self, window_seconds: int = 60) -> None:
        self._window_ms = window_seconds * 1000
        self._samples: deque[tuple[int, int]] = deque()

    def observe(self, server_ms: int, admitted_total: int) -> None:
        """Record the room's admitted counter as read at Redis time ``server_ms``."""
        samples = self._samples
        if samples and admitted_total < samples[-1][1]:
            samples.clear()  # the room was reset
        if samples and server_ms - samples[-1][0] < _SAMPLE_EVERY_MS:
            return
        samples.append((server_ms, admitted_total))
        while server_ms - samples[0][0] > self._window_ms:
            samples.popleft()

    def per_second(self) -> float | None:
        """Admissions per second over the window, or None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) * 1000 / (t1 - t0)

    def eta_seconds(self, position: int) -> int | None:
        """Seconds until ``position`` reaches the door at the rate measured over the
        last :data:`ETA_MEASURED_SECONDS` or more; None until then, or while nobody
        is being let in."""
        rate = self.per_second()
        if not rate or self._samples[-1][0] - self._samples[0][0] < ETA_MEASURED_SECONDS * 1000:
            return None
        return math.ceil(position / rate)


WAIT_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
