"""``GET /_wr/metrics``: every room's numbers in the Prometheus text format."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from waitingroom.engine import Engine
from waitingroom.room.room import Room


async def metrics(engine: Engine, rooms: list[Room]) -> bytes:
    """Every room's numbers in Prometheus text format."""
    started = time.perf_counter()
    await engine.ping()
    latency = time.perf_counter() - started
    labels = ["room"]
    waits = HistogramMetricFamily(
        "waitingroom_wait_seconds", "Join-to-admission wait of visitors admitted by "
        "this process", labels=labels)
    gauges = {name: GaugeMetricFamily(name, help_text, labels=labels) for name, help_text in (
        ("waitingroom_queue_length", "Visitors waiting in line"),
        ("waitingroom_active_sessions", "Sessions admitted to the order flow"),
        ("waitingroom_capacity", "Concurrent sessions the order flow may have"),
        ("waitingroom_paused", "1 while admission is paused"),
        ("waitingroom_breaker_open", "1 while the breaker is open or half-open"),
        ("waitingroom_admission_rate", "Admissions per second over the last minute"),
    )}
    counters = {name: CounterMetricFamily(name, help_text, labels=labels)
                for name, help_text in (
        ("waitingroom_admitted", "Visitors admitted"),
        ("waitingroom_abandoned", "Places and standby turns released after the grace"),
        ("waitingroom_expired", "Sessions ended by idle or maximum time"),
        ("waitingroom_ended_early", "Sessions ended early (one request only, or their "
                                    "page went): their first free slot kept for the grace"),
        ("waitingroom_missed", "Slots held for visitors who did not come in time"),
        ("waitingroom_released", "Sessions ended by the origin"),
        ("waitingroom_captures", "Orders captured while the order flow was down"),
    )}
    for room in rooms:
        label = room.name
        config = await engine.rooms.config(label)
        counts = await engine.rooms.counts(label)
        breaker = await engine.breaker.state(label)
        waits.add_metric([label], room.wait_times.cumulative(),
                         sum_value=room.wait_times.total)
        for name, value in (
            ("waitingroom_queue_length", counts.waiting),
            ("waitingroom_active_sessions", counts.active),
            ("waitingroom_capacity", config.capacity),
            ("waitingroom_paused", int(config.paused)),
            ("waitingroom_breaker_open", int(breaker != "closed")),
            ("waitingroom_admission_rate", room.rate.per_second() or 0.0),
        ):
            gauges[name].add_metric([label], value)
        for name, total in (
            ("waitingroom_admitted", counts.admitted),
            ("waitingroom_abandoned", counts.abandoned),
            ("waitingroom_expired", counts.expired),
            ("waitingroom_ended_early", counts.early),
            ("waitingroom_missed", counts.missed),
            ("waitingroom_released", counts.released),
            ("waitingroom_captures", await engine.captures.count(label)),
        ):
            counters[name].add_metric([label], total)
    redis_latency = GaugeMetricFamily("waitingroom_redis_latency_seconds",
                                      "One PING round trip, timed at the scrape")
    redis_latency.add_metric([], latency)
    families: list[Metric] = [waits, *gauges.values(), redis_latency, *counters.values()]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    ProcessCollector(registry=registry)  # this process's memory, CPU and files
    return generate_latest(registry)


class _Fixed:
    """A collector that yields metric families measured just before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families
