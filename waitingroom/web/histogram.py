"""Histograms of seconds counted in this process, in fixed buckets, exported as
Prometheus histograms (``/_wr/metrics``): visitors' waits, and how long answers take
by kind (``LATENCIES``)."""

from __future__ import annotations

from bisect import bisect_left

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0)
"""Bounds (seconds) for answer times: a status poll takes a millisecond, an origin
answer tens to hundreds, a Redis outage seconds."""


class Histogram:
    """Observations counted in the buckets ``buckets`` (upper bounds, ascending) and
    one for the rest, with their sum."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound it does not exceed."""
        self.total += value
        self.counts[bisect_left(self.buckets, value)] += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus histograms want them."""
        pairs, running = [], 0
        for bound, count in zip([*map(str, self.buckets), "+Inf"], self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


class Latencies:
    """How long this process took, by kind: ``poll`` (a status poll answered),
    ``gated`` (a request on a gated path answered in full: a queue page, or an
    admitted request through the origin), ``origin`` (an admitted request until the
    origin's answer began), ``redis`` (the room's half-second report, one round trip)."""

    def __init__(self) -> None:
        self.kinds: dict[str, Histogram] = {}

    def observe(self, kind: str, seconds: float) -> None:
        """Count one answer of ``kind`` that took ``seconds``."""
        histogram = self.kinds.get(kind)
        if histogram is None:
            histogram = self.kinds[kind] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)


LATENCIES = Latencies()
"""This process's answer times (one process, one set: as Prometheus clients keep theirs)."""
