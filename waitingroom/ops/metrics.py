"""``GET /_wr/metrics``: every room's numbers in the Prometheus text format.

Two kinds of series, told apart in their help texts (docs/operations.md, "Metrics"):

- **room-wide** (``waitingroom_queue_length``, ``_capacity``, ``_admitted_total``, ...):
  read from Redis, so every process exports the same value; aggregate them over
  processes with ``max by (room)``, never ``sum``;
- **per process** (``waitingroom_request_seconds``, ``_wait_seconds``, ``_redis_up``,
  ``process_*``): this process's own; ``sum`` them.

While Redis does not answer (the rooms' reports say so, or it does not answer the
scrape within :data:`REDIS_PATIENCE_SECONDS`), the room-wide series are left out and
``waitingroom_redis_up`` is 0: the scrape itself still succeeds, in time.

Room-wide counters come from Redis: after a failover to a replica that was behind, or
an ``appendfsync everysec`` restart, one can go back a little, which ``rate()`` reads as
a reset.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError

from waitingroom.engine import Engine
from waitingroom.room.room import Room
from waitingroom.web.histogram import LATENCIES

ROOM_WIDE = " (room-wide: every process reports the same; aggregate with max by (room))"
PER_PROCESS = " (this process's: aggregate with sum)"
REDIS_PATIENCE_SECONDS = 2.0
"""The most a scrape waits for Redis (Prometheus gives a scrape 10 s by default)."""
BREAKER_STATES = ("closed", "open", "half")


async def metrics(engine: Engine, rooms: list[Room]) -> bytes:
    """Every room's numbers in Prometheus text format."""
    families: list[Metric] = [*_per_process(rooms)]
    redis_up = GaugeMetricFamily("waitingroom_redis_up", "1 if Redis answered this scrape"
                                 + PER_PROCESS)
    redis_latency = GaugeMetricFamily(
        "waitingroom_redis_latency_seconds", "One PING round trip, timed at the scrape "
        "(this process's: aggregate with max)")
    started = time.perf_counter()
    try:
        if any(room.redis_watch.silent_since() is not None for room in rooms):
            raise RedisError("the room's reports go unanswered")
        async with asyncio.timeout(REDIS_PATIENCE_SECONDS):
            await engine.ping()
            redis_latency.add_metric([], time.perf_counter() - started)
            families += await _room_wide(engine, rooms)
        redis_up.add_metric([], 1)
    except (RedisError, TimeoutError):
        redis_up.add_metric([], 0)
    families += [redis_up, redis_latency]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    ProcessCollector(registry=registry)  # this process's memory, CPU and files
    return generate_latest(registry)


def _per_process(rooms: list[Room]) -> list[Metric]:
    waits = HistogramMetricFamily(
        "waitingroom_wait_seconds", "Join-to-admission wait of visitors admitted by this "
        "process" + PER_PROCESS, labels=["room"])
    for room in rooms:
        waits.add_metric([room.name], room.wait_times.cumulative(),
                         sum_value=room.wait_times.total)
    answers = HistogramMetricFamily(
        "waitingroom_request_seconds", "How long this process took, by kind: poll (a "
        "status poll), gated (a request on a gated path, answered in full), origin (an "
        "admitted request until the origin's answer began), redis (the room's report, "
        "one round trip)" + PER_PROCESS, labels=["kind"])
    for kind, histogram in sorted(LATENCIES.kinds.items()):
        answers.add_metric([kind], histogram.cumulative(), sum_value=histogram.total)
    outcomes = CounterMetricFamily(
        "waitingroom_origin_answers", "The origin's answers to admitted requests and to the "
        "breaker's health checks, by outcome (error: a 5xx, a timeout or no connection)"
        + PER_PROCESS, labels=["room", "outcome"])
    for room in rooms:
        errors, ok = room.breaker.outcomes
        outcomes.add_metric([room.name, "ok"], ok)
        outcomes.add_metric([room.name, "error"], errors)
    return [waits, answers, outcomes]


async def _room_wide(engine: Engine, rooms: list[Room]) -> list[Metric]:
    labels = ["room"]
    gauges = {name: GaugeMetricFamily(name, help_text + ROOM_WIDE, labels=labels)
              for name, help_text in (
        ("waitingroom_queue_length", "Visitors waiting in line"),
        ("waitingroom_active_sessions", "Sessions admitted to the order flow"),
        ("waitingroom_capacity", "Concurrent sessions the order flow may have"),
        ("waitingroom_paused", "1 while admission is paused"),
    )}
    breaker = GaugeMetricFamily("waitingroom_breaker_state", "1 for the breaker's state "
                                "(closed, open or half: probing), 0 for the others"
                                + ROOM_WIDE, labels=["room", "state"])
    counters = {name: CounterMetricFamily(name, help_text + ROOM_WIDE, labels=labels)
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
        state = await engine.breaker.state(label)
        for name, value in (
            ("waitingroom_queue_length", counts.waiting),
            ("waitingroom_active_sessions", counts.active),
            ("waitingroom_capacity", config.capacity),
            ("waitingroom_paused", int(config.paused)),
        ):
            gauges[name].add_metric([label], value)
        for each in BREAKER_STATES:
            breaker.add_metric([label, each], int(state == each))
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
    return [*gauges.values(), breaker, *counters.values()]


class _Fixed:
    """A collector that yields metric families measured just before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families
