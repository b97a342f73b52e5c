"""Rooms as ops see them: the live config, the counts, the registry of rooms
created at run time, and the audit log of every change."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from waitingroom.engine.keys import (
    HEARD_SLOTS,
    LINE_BUCKET,
    chunks,
    register_script,
    room_keys,
    room_time,
    server_ms,
)
from waitingroom.engine.room_change import RoomChange

AUDIT_LENGTH = 10_000  # entries (about) a room's audit log keeps
ROOMS_KEY = "wr:rooms"
"""The registry of rooms created at run time (name -> JSON definition); not under
any room's hash tag, so on a Redis Cluster it lives on one shard of its own."""
MAX_ROOMS = 100


@dataclass(frozen=True, slots=True)
class RoomConfig:
    """The live, ops-tunable part of a room, as stored in Redis."""

    capacity: int
    paused: bool
    mode: str
    """``normal`` (gate the order flow), ``open`` (let everyone through) or ``closed``
    (no new places; the line drains in order)."""
    message: str
    rate: int = 0
    """Admissions per minute on top of the capacity cap; 0 means no limit."""
    capture: str = "auto"
    """Data-capture mode: ``auto`` (follow the breaker), ``on`` or ``off`` (forced)."""
    message_at_ms: int = 0
    """When the message was last set (Redis time, ms)."""
    start_at_ms: int = 0
    """Scheduled start (Redis time, ms): before it nobody is admitted and arrivals
    join a pre-queue drawn in random order at the start; 0 = no schedule."""
    messages: dict[str, str] = field(default_factory=dict)
    """The message in other languages, by language code (``message`` otherwise)."""
    stock: int | None = None
    """Units left to sell (0: sold out); None when the room does not count stock."""
    max_waiting: int = 0
    """The longest the line may grow; past it arrivals get no place (0: no limit)."""
    sales_per_session: float = 1.0
    """Units a session is assumed to buy until the room has measured it."""
    method: str = "fifo"
    """How the line works: ``fifo`` (first come, first served), ``random`` (a fair
    draw among those waiting at each admission), ``passthrough``
    (sessions counted, everyone let in at once) or ``reject`` (no line: who cannot walk
    straight in gets the 'line is full' page and no place)."""
    restocked_at_ms: int = 0
    """When the stock last came back from 0 (room time, ms); 0: never."""
    sold_out_at_ms: int = 0
    """When the stock last ran out (room time, ms); 0: never. A message posted before
    it is not shown while the room is sold out (it no longer says the truth)."""
    next_step_ms: int | None = None
    """When the room's next planned change is due (Redis time, ms); None if none."""
    capacity_mode: str = "fixed"
    """``fixed`` (ops set the capacity) or ``adaptive`` (the room learns it from the
    origin's answers, between ``capacity_min`` and ``capacity_max``)."""
    capacity_min: int = 1
    capacity_max: int = 0

    @property
    def sold_out(self) -> bool:
        """No stock left: nobody more is let in and no new place is given."""
        return self.stock is not None and self.stock <= 0

    @property
    def message_stands(self) -> bool:
        """Whether the operator's message is shown: not while sold out if posted before
        the room sold out (a "selling fast" no longer says the truth)."""
        return not (self.sold_out and self.message_at_ms < self.sold_out_at_ms)

    def message_in(self, lang: str) -> str:
        """The operator's message for a visitor reading ``lang``."""
        return self.messages.get(lang) or self.message


@dataclass(frozen=True, slots=True)
class RoomDefinition:
    """A room created at run time: its name and the paths it gates."""

    name: str
    paths: tuple[str, ...]
    """Glob patterns of the order flow this room gates."""
    capacity: int
    """Capacity at creation (seeds the live config)."""
    created_at_ms: int


class RoomExists(ValueError):
    """A room of that name is already registered."""


@dataclass(frozen=True, slots=True)
class RoomCounts:
    """A snapshot of a room's numbers (not atomic across fields)."""

    waiting: int
    active: int
    admitted: int
    abandoned: int
    expired: int
    """Sessions ended by their idle time or length."""
    released: int
    early: int = 0
    """Sessions that ended early (one request only, or their page went): on standby."""
    missed: int = 0
    """Slots held for visitors who did not come in time: on standby."""


class RoomStore:
    """Every room's config, counts, registry and audit log (``Engine.rooms``)."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._change = register_script(redis, "change")

    async def seed(
        self, room: str, *, capacity: int, message: str = "", capture: str = "auto"
    ) -> None:
        """Give ``room`` its start-up config unless Redis already holds a live one."""
        config_key = room_keys(room).config
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(config_key, "capacity", capacity)
            pipe.hsetnx(config_key, "paused", "0")
            pipe.hsetnx(config_key, "mode", "normal")
            pipe.hsetnx(config_key, "message", message)
            pipe.hsetnx(config_key, "capture", capture)
            pipe.hsetnx(config_key, "message_at", await server_ms(self.redis))
            await pipe.execute()

    async def change(self, room: str, who: str, action: str, change: RoomChange, *,
                     audited: bool = True, only_if: dict[str, str] | None = None) -> bool:
        """Make ``change`` and audit what really changed, as ``who`` did by ``action``
        (unless not ``audited``), in one step; every process sees it within a second.
        With ``only_if`` (config field: value), only if each holds now: whether it was
        made."""
        conditions = [part for pair in (only_if or {}).items() for part in pair]
        keys = room_keys(room)
        return bool(await self._change(
            (*keys.core, keys.audit),
            (who, action, "1" if audited else "", AUDIT_LENGTH, len(conditions) // 2,
             *conditions, *change.as_config())))

    async def configure(self, room: str, **fields: Any) -> None:
        """:meth:`change` ``room`` by ``fields`` (as :meth:`RoomChange.of` takes them;
        ValueError saying what is wrong), unaudited: the capacity planner's private
        Redis, and tests."""
        await self.change(room, "", "", RoomChange.of(**fields), audited=False)

    async def set_clock(self, room: str, now_ms: int) -> None:
        """Run ``room`` on simulated time from now on: the capacity planner's private
        Redis only (``waitingroom simulate``); a live room always uses Redis time."""
        await self.redis.hset(room_keys(room).config, "clock", now_ms)

    async def config(self, room: str) -> RoomConfig:
        """Read a room's live config."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.config)
            pipe.zrange(keys.timeline, 0, 0, withscores=True)
            raw, soonest = await pipe.execute()
        raw = cast(dict[bytes, bytes], raw)
        return RoomConfig(
            next_step_ms=int(soonest[0][1]) if soonest else None,
            capacity=int(raw.get(b"capacity", 0)),
            paused=raw.get(b"paused") == b"1",
            mode=raw.get(b"mode", b"normal").decode(),
            message=raw.get(b"message", b"").decode(),
            rate=int(raw.get(b"rate", 0)),
            capture=raw.get(b"capture", b"auto").decode(),
            message_at_ms=int(raw.get(b"message_at", 0)),
            start_at_ms=int(raw.get(b"start_at", 0)),
            messages={k[8:].decode(): v.decode() for k, v in raw.items()
                      if k.startswith(b"message:") and v},
            stock=int(raw[b"stock"]) if b"stock" in raw else None,
            max_waiting=int(raw.get(b"max_waiting", 0)),
            method=raw.get(b"method", b"fifo").decode(),
            restocked_at_ms=int(raw.get(b"restocked_at", 0)),
            sold_out_at_ms=int(raw.get(b"sold_out_at", 0)),
            sales_per_session=float(raw.get(b"sales_per_session", 1.0)),
            capacity_mode=raw.get(b"capacity_mode", b"fixed").decode(),
            capacity_min=int(raw.get(b"capacity_min", 1)),
            capacity_max=int(raw.get(b"capacity_max", 0)),
        )

    async def counts(self, room: str) -> RoomCounts:
        """Read a room's queue length, active sessions (those not yet ended by their
        idle or total time, swept or not: a quiet room sweeps only when asked) and
        counters."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.priority)
            pipe.zcard(keys.prequeue)
            pipe.hgetall(keys.stats)
            pipe.get(keys.seq)
            pipe.hget(keys.config, "clock")
            invited, early, counters, end, clock = await pipe.execute()
        head, end = int(counters.get(b"head", 0)), int(end or 0)
        # A session's score is when it ends, by the room's clock.
        now = room_time(await server_ms(self.redis), counters.get(b"skipped"), clock)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcount(keys.active, f"({now}", "+inf")
            for key, lo, hi in chunks(keys.left, head + 1, end) if end > head else ():
                pipe.execute_command("BITCOUNT", key, lo, hi, "BIT")
            sessions, *walked = await pipe.execute()
        in_line = end - head - sum(walked) if end > head else 0
        return RoomCounts(
            waiting=in_line + invited + early,
            active=sessions,
            **{name: int(counters.get(name.encode(), 0))
               for name in ("admitted", "abandoned", "expired", "released", "early",
                            "missed")},
        )

    # -- rooms created at run time ---------------------------------------------------

    async def registered(self) -> list[RoomDefinition]:
        """Rooms created at run time, oldest first."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(ROOMS_KEY))
        rooms = []
        for name, value in raw.items():
            data = json.loads(value)
            rooms.append(RoomDefinition(name.decode(), tuple(data["paths"]), data["capacity"],
                                        data["created_at_ms"]))
        return sorted(rooms, key=lambda r: (r.created_at_ms, r.name))

    async def create(
        self, name: str, *, paths: Sequence[str], capacity: int, rate: int = 0,
        message: str = "",
    ) -> RoomDefinition:
        """Register a room gating ``paths``, with a fresh live config.

        Raises :class:`RoomExists` if the name is taken, ``ValueError`` past
        ``MAX_ROOMS``.
        """
        if await self.redis.hlen(ROOMS_KEY) >= MAX_ROOMS:
            raise ValueError(f"at most {MAX_ROOMS} rooms")
        room = RoomDefinition(name, tuple(paths), capacity, await server_ms(self.redis))
        definition = json.dumps({"paths": list(room.paths), "capacity": capacity,
                                 "created_at_ms": room.created_at_ms})
        if not await self.redis.hsetnx(ROOMS_KEY, name, definition):
            raise RoomExists(name)
        await self.redis.hset(room_keys(name).config, mapping={
            "capacity": capacity, "rate": rate, "paused": "0", "mode": "normal",
            "message": message, "capture": "auto", "start_at": 0,
            "message_at": room.created_at_ms})
        return room

    async def revoke(self, name: str) -> bool:
        """Unregister a room and clear its line and sessions; False if it was not
        registered. Captures, replay state and the audit log are kept."""
        if not await self.redis.hdel(ROOMS_KEY, name):
            return False
        await self.clear(name)
        return True

    async def clear(self, room: str) -> None:
        """Forget ``room``'s line, sessions, config and counters (captures, replay
        state and the audit log are kept)."""
        keys = room_keys(room)
        trimmed = int(await self.redis.hget(keys.stats, "trimmed") or 0)
        end = int(await self.redis.get(keys.seq) or 0)
        buckets = [f"{keys.line}:{b}" for b in range(trimmed // LINE_BUCKET,
                                                     end // LINE_BUCKET + 1)]
        for prefix in (keys.left, *(f"{keys.heard}:{slot}" for slot in range(HEARD_SLOTS))):
            buckets += [key for key, _, _ in chunks(prefix, trimmed, end)]
        for start in range(0, len(buckets), 1000):
            await self.redis.delete(*buckets[start:start + 1000])
        await self.redis.delete(
            keys.seen, keys.active, keys.deadline, keys.seq, keys.config, keys.stats,
            keys.priority, keys.prequeue, keys.away, keys.renamed, keys.standby, keys.hidden,
            keys.breaker, keys.outcomes, keys.notify, f"{keys.notify}:until", keys.timeline,
            keys.steps, keys.planned, keys.adapt)

    # -- audit -------------------------------------------------------------------------

    async def audit(self, room: str, who: str, action: str, before: dict[str, Any],
                    after: dict[str, Any]) -> None:
        """Append to the room's audit log (who, what, before/after; Redis time as id)."""
        await self.redis.xadd(room_keys(room).audit, {
            "who": who, "action": action, "before": json.dumps(before),
            "after": json.dumps(after)}, maxlen=AUDIT_LENGTH, approximate=True)

    async def read_audit(self, room: str, count: int = 50) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        entries = cast(list[Any], await self.redis.xrevrange(room_keys(room).audit,
                                                             count=count))
        return [{"at_ms": int(entry_id.split(b"-")[0]), "who": data[b"who"].decode(),
                 "action": data[b"action"].decode(), "before": json.loads(data[b"before"]),
                 "after": json.loads(data[b"after"])} for entry_id, data in entries]
