"""The admission engine: the only module that talks to Redis.

Every state change is one Lua script (``waitingroom/lua/``), so any number of
processes on any number of machines behave as one waiting room. All keys of a room
share the hash tag ``{room}`` and so live on one Redis Cluster shard.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, FieldT

from waitingroom._batch import Batcher
from waitingroom.settings import Settings

_KEY_NAMES = ("queue", "seen", "active", "deadline", "seq", "config", "stats")
_MODES = ("normal", "open")
# Connections per process. Past this, requests wait for one (up to the timeout)
# rather than fail: a spike queues in memory instead of erroring.
_POOL_SIZE = 64
_POOL_WAIT_SECONDS = 5


class VisitState(enum.IntEnum):
    """Where a visitor stands after :meth:`Engine.visit`."""

    NO_PLACE = -1
    WAITING = 0
    ADMITTED = 1


@dataclass(frozen=True, slots=True)
class Visit:
    """Result of :meth:`Engine.visit`."""

    state: VisitState
    position: int
    """1-based place in line while waiting; 0 otherwise."""
    admitted_total: int
    """Visitors this room has admitted so far (feeds the admission-rate estimate)."""
    server_ms: int
    """Redis server time of the answer, in milliseconds."""


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """The live, ops-tunable part of a room, as stored in Redis."""

    capacity: int
    paused: bool
    mode: str
    """``normal`` (gate the order flow) or ``open`` (let everyone through)."""
    message: str


@dataclass(frozen=True, slots=True)
class RoomCounts:
    """A snapshot of a room's numbers (not atomic across fields)."""

    waiting: int
    active: int
    admitted: int
    abandoned: int
    expired: int
    released: int


@cache
def room_keys(room: str) -> tuple[str, ...]:
    """Redis keys of ``room`` in the order the Lua scripts expect them."""
    return tuple(f"wr:{{{room}}}:{name}" for name in _KEY_NAMES)


def _script_source(name: str) -> str:
    lua = resources.files("waitingroom") / "lua"
    return (lua / "_room.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Engine:
    """Admission state of every room, kept in Redis.

    Each method is at most one round trip; concurrent :meth:`visit` and :meth:`touch`
    calls for a room share one. Scripts are idempotent per visitor or session id,
    because redis-py retries a command whose reply was lost.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        grace_seconds: int,
        session_idle_seconds: int,
        session_max_seconds: int,
    ) -> None:
        self.redis = redis
        self._grace_ms = grace_seconds * 1000
        self._idle_ms = session_idle_seconds * 1000
        self._max_ms = session_max_seconds * 1000
        self._visit: AsyncScript = redis.register_script(_script_source("visit"))
        self._touch: AsyncScript = redis.register_script(_script_source("touch"))
        self._release: AsyncScript = redis.register_script(_script_source("release"))
        self._visits: Batcher[tuple[str, bool], Visit] = Batcher(self._visit_many)
        self._touches: Batcher[str, bool] = Batcher(self._touch_many)

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis | None = None) -> Engine:
        """Build an engine for ``settings``, connecting to its ``redis_url`` if needed."""
        if redis is None:
            pool = BlockingConnectionPool.from_url(
                settings.redis_url, max_connections=_POOL_SIZE, timeout=_POOL_WAIT_SECONDS)
            redis = Redis.from_pool(pool)
        return cls(
            redis,
            grace_seconds=settings.grace_seconds,
            session_idle_seconds=settings.session_idle_seconds,
            session_max_seconds=settings.session_max_seconds,
        )

    async def visit(self, room: str, visitor_id: str, *, join: bool = True) -> Visit:
        """Report where ``visitor_id`` stands, taking a place at the back if ``join``.

        Also releases abandoned places and expired sessions and admits the next in
        line into free slots; an admitted visitor's session is claimed (kept alive).
        """
        return await self._visits.submit(room, (visitor_id, join))

    async def _visit_many(self, room: str, visitors: Sequence[tuple[str, bool]]) -> list[Visit]:
        args: list[str | int] = [self._grace_ms, self._idle_ms, self._max_ms]
        for visitor_id, join in visitors:
            args += [visitor_id, "1" if join else "0"]
        *pairs, admitted, now = await self._visit(room_keys(room), args)
        return [Visit(VisitState(pairs[i]), pairs[i + 1], admitted, now)
                for i in range(0, len(pairs), 2)]

    async def touch(self, room: str, session_id: str) -> bool:
        """Keep an admitted session alive; False if it has ended."""
        return await self._touches.submit(room, session_id)

    async def _touch_many(self, room: str, session_ids: Sequence[str]) -> list[bool]:
        alive = await self._touch(room_keys(room), (self._grace_ms, self._idle_ms,
                                                    self._max_ms, *session_ids))
        return [bool(a) for a in alive]

    async def release(self, room: str, session_id: str) -> bool:
        """End a session now, giving its slot to the next in line."""
        return bool(await self._release(room_keys(room), (session_id, self._grace_ms)))

    async def seed_room(self, room: str, *, capacity: int, message: str = "") -> None:
        """Give ``room`` its start-up config unless Redis already holds a live one."""
        config_key = room_keys(room)[5]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(config_key, "capacity", capacity)
            pipe.hsetnx(config_key, "paused", "0")
            pipe.hsetnx(config_key, "mode", "normal")
            pipe.hsetnx(config_key, "message", message)
            await pipe.execute()

    async def set_room_config(
        self,
        room: str,
        *,
        capacity: int | None = None,
        paused: bool | None = None,
        mode: str | None = None,
        message: str | None = None,
    ) -> None:
        """Change a room's live config; every process sees it within a second."""
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be at least 1")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        changes: dict[str, int | str | None] = {
            "capacity": capacity, "mode": mode, "message": message,
            "paused": None if paused is None else str(int(paused))}
        mapping: dict[FieldT, EncodableT] = {
            k: v for k, v in changes.items() if v is not None}
        if mapping:
            await self.redis.hset(room_keys(room)[5], mapping=mapping)

    async def room_config(self, room: str) -> RoomConfig:
        """Read a room's live config."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(room_keys(room)[5]))
        return RoomConfig(
            capacity=int(raw.get(b"capacity", 0)),
            paused=raw.get(b"paused") == b"1",
            mode=raw.get(b"mode", b"normal").decode(),
            message=raw.get(b"message", b"").decode(),
        )

    async def counts(self, room: str) -> RoomCounts:
        """Read a room's queue length, active sessions and counters."""
        queue, _, active, _, _, _, stats = room_keys(room)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(queue)
            pipe.zcard(active)
            pipe.hgetall(stats)
            waiting, sessions, counters = await pipe.execute()
        return RoomCounts(
            waiting=waiting,
            active=sessions,
            **{name: int(counters.get(name.encode(), 0))
               for name in ("admitted", "abandoned", "expired", "released")},
        )

    async def ping(self) -> bool:
        """True if Redis answers."""
        return bool(await self.redis.ping())

    async def aclose(self) -> None:
        """Close the Redis connection pool."""
        await self.redis.aclose()
