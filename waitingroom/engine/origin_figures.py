"""How a room's origin answers its admitted shoppers, as every process saw it, by
interval (requests, total latency, errors), the one decision per interval that
adaptive capacity makes from them (:meth:`OriginFigures.claim`), and the most sessions
it has served at once without trouble (:meth:`OriginFigures.proven`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from waitingroom.engine.keys import register_script, room_keys

_KEEP_SECONDS = 600
"""How long one interval's figures are kept (the dashboard reads the recent ones)."""


@dataclass(frozen=True, slots=True)
class IntervalFigures:
    """What the origin did for admitted shoppers in one interval, all processes
    together."""

    requests: int = 0
    latency_ms_total: int = 0
    errors: int = 0
    """Answers of 500 or more (the proxy's 502 and 504 for a failed or timed-out
    origin included)."""

    @property
    def mean_latency_ms(self) -> float:
        """The mean time to the origin's answer (0 without requests)."""
        return self.latency_ms_total / self.requests if self.requests else 0.0

    @property
    def error_ratio(self) -> float:
        """The share of answers that were errors (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0


class OriginFigures:
    """Every room's origin figures (``Engine.origin``)."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._claim = register_script(redis, "claim_interval", library=False)
        self._prove = register_script(redis, "prove", library=False)

    async def add(self, room: str, interval: int, figures: IntervalFigures) -> None:
        """Add one process's ``figures`` to ``interval``'s."""
        key = f"{room_keys(room).adapt}:{interval}"
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(key, "requests", figures.requests)
            pipe.hincrby(key, "latency_ms", figures.latency_ms_total)
            pipe.hincrby(key, "errors", figures.errors)
            pipe.expire(key, _KEEP_SECONDS)
            await pipe.execute()

    async def interval(self, room: str, interval: int) -> IntervalFigures:
        """All processes' figures for ``interval``."""
        raw = await self.redis.hmget(f"{room_keys(room).adapt}:{interval}",
                                     "requests", "latency_ms", "errors")
        requests, latency, errors = (int(value or 0) for value in raw)
        return IntervalFigures(requests, latency, errors)

    async def claim(self, room: str, interval: int) -> dict[str, Any] | None:
        """Take the decision for ``interval`` (one caller wins, once; earlier intervals
        are never decided after a later one): the memory the last decision left, or
        None if the decision is someone else's."""
        memory = await self._claim((room_keys(room).adapt,), (interval,))
        if memory is None:
            return None
        return dict(json.loads(memory)) if memory else {}

    async def prove(self, room: str, sessions: int) -> int:
        """The origin served ``sessions`` at once without trouble: keep the most it
        ever has, and return it."""
        return int(await self._prove((room_keys(room).adapt,), (sessions,)))

    async def proven(self, room: str) -> int:
        """The most sessions the origin has served at once without trouble (0: not
        seen yet)."""
        return int(await self.redis.hget(room_keys(room).adapt, "proven") or 0)

    async def remember(self, room: str, memory: dict[str, Any]) -> None:
        """Keep what the next decision needs."""
        await self.redis.hset(room_keys(room).adapt, "memory", json.dumps(memory))
