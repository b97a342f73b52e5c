"""A room's timeline: setting changes planned for set times (at 09:00 open with
capacity 500; at 09:05 rate 2000/min; at 18:00 close with a message), each applied
once, by one process, when due (``lua/take_steps.lua``). Steps from the config file
(``cfg-`` ids) leave a mark when applied or cancelled, so a restart does not plan them
again (``lua/plan_steps.lua``)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from waitingroom.engine.keys import register_script, room_keys, server_ms

LEASE_MS = 30_000
"""How long a process has to apply a step it took before another may take it."""
MAX_STEPS = 100
_FROM_CONFIG = "cfg-"


@dataclass(frozen=True, slots=True)
class Step:
    """One planned change of a room's live settings."""

    id: str
    at_ms: int
    """When it is due (Redis time, ms)."""
    changes: dict[str, Any]
    """Live settings, as ``POST /_wr/admin/room`` takes them."""
    who: str
    """Who planned it (the audit names them when it is applied)."""


class TimelineStore:
    """Every room's timeline (``Engine.timeline``)."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._take = register_script(redis, "take_steps")
        self._plan = register_script(redis, "plan_steps")

    async def add(self, room: str, changes: dict[str, Any], who: str, *,
                  at_ms: int | None = None, in_seconds: int = 0) -> Step:
        """Plan ``changes`` for ``at_ms`` (epoch ms), or ``in_seconds`` from now (Redis
        time); ValueError past :data:`MAX_STEPS`."""
        keys = room_keys(room)
        if at_ms is None:
            at_ms = await server_ms(self.redis) + 1000 * in_seconds
        if await self.redis.zcard(keys.timeline) >= MAX_STEPS:
            raise ValueError(f"at most {MAX_STEPS} steps planned per room")
        step = Step(secrets.token_hex(6), at_ms, changes, who)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.steps, step.id, json.dumps(asdict(step)))
            pipe.zadd(keys.timeline, {step.id: at_ms})
            await pipe.execute()
        return step

    async def plan_once(self, room: str, planned: Iterable[tuple[int, dict[str, Any]]]) -> int:
        """Plan the config file's steps (epoch ms, changes) unless planned, applied or
        cancelled already (a step is known by its time and changes); how many are new."""
        keys = room_keys(room)
        args: list[Any] = []
        for at_ms, changes in planned:
            text = json.dumps(changes, sort_keys=True)
            step_id = _FROM_CONFIG + hashlib.sha256(f"{at_ms} {text}".encode()).hexdigest()[:12]
            args += [step_id, at_ms, json.dumps(asdict(Step(step_id, at_ms, changes, "config")))]
        if not args:
            return 0
        return int(await self._plan((*keys.core, keys.timeline, keys.steps, keys.planned),
                                    args))

    async def steps(self, room: str) -> list[Step]:
        """The steps still to apply, soonest first."""
        raw = await self.redis.hvals(room_keys(room).steps)
        return sorted((Step(**json.loads(value)) for value in raw),
                      key=lambda step: (step.at_ms, step.id))

    async def cancel(self, room: str, step_id: str) -> Step | None:
        """Drop a step not yet applied; the step, or None if there is none such."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.steps, step_id)
            pipe.hdel(keys.steps, step_id)
            pipe.zrem(keys.timeline, step_id)
            if step_id.startswith(_FROM_CONFIG):
                pipe.sadd(keys.planned, step_id)
            raw = (await pipe.execute())[0]
        return None if raw is None else Step(**json.loads(raw))

    async def due(self, room: str) -> list[Step]:
        """The steps due now, each leased to this caller alone (call :meth:`done` once
        it is applied)."""
        keys = room_keys(room)
        taken = await self._take((*keys.core, keys.timeline, keys.steps), (LEASE_MS,))
        return [Step(**json.loads(raw)) for raw in taken]

    async def done(self, room: str, step: Step) -> None:
        """Forget a step this caller applied."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.steps, step.id)
            pipe.zrem(keys.timeline, step.id)
            if step.id.startswith(_FROM_CONFIG):
                pipe.sadd(keys.planned, step.id)
            await pipe.execute()
