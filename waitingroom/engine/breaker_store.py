"""The room's circuit breaker, shared by every process: order-flow outcomes go in
(``lua/breaker.lua``), the state comes out, and half-open probes are handed out one
by one (``lua/probe.lua``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from waitingroom.engine.keys import register_script, room_keys
from waitingroom.engine.rooms import AUDIT_LENGTH


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The room's circuit breaker, shared by every process."""

    state: str
    """``closed`` (origin healthy), ``open`` (capture mode) or ``half`` (probing)."""
    opened_at_ms: int


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the breaker opens and closes (see ``Settings.breaker_*``)."""

    window_seconds: int
    failure_ratio: float
    min_requests: int
    cooldown_seconds: int
    probes: int


class BreakerStore:
    """Every room's breaker (``Engine.breaker``)."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._report = register_script(redis, "breaker")
        self._probe = register_script(redis, "probe")

    async def report(
        self, room: str, successes: int, failures: int, policy: BreakerPolicy
    ) -> BreakerState:
        """Add order-flow outcomes to the shared breaker and return its state."""
        keys = room_keys(room)
        state, opened_at = await self._report(
            (*keys.core, keys.breaker, keys.outcomes, keys.audit),
            (successes, failures, policy.window_seconds, policy.failure_ratio,
             policy.min_requests, policy.cooldown_seconds * 1000, policy.probes,
             AUDIT_LENGTH),
        )
        return BreakerState(state.decode(), int(opened_at))

    async def take_probe(self, room: str, policy: BreakerPolicy) -> bool:
        """While the breaker is half-open: may this request go to the origin as a probe?"""
        keys = room_keys(room)
        return bool(await self._probe((*keys.core, keys.breaker),
                                      (policy.probes, policy.cooldown_seconds * 1000)))

    async def state(self, room: str) -> str:
        """The breaker's state as stored (``closed`` if it never opened)."""
        state = cast(bytes | None, await self.redis.hget(room_keys(room).breaker, "state"))
        return state.decode() if state else "closed"

    async def last_change(self, room: str) -> dict[str, Any] | None:
        """When the breaker last changed state and why (the figures that moved it, as
        audited), or None if it never did."""
        changed_at, why = cast(list[bytes | None], await self.redis.hmget(
            room_keys(room).breaker, ["changed_at", "why"]))
        if changed_at is None or why is None:
            return None
        return {"at_ms": int(changed_at), "why": json.loads(why)}
