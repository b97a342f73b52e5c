"""The admission engine: the only module that talks to Redis.

Every state change is one Lua script (``waitingroom/lua/``), so any number of
processes on any number of machines behave as one waiting room. All keys of a room
share the hash tag ``{room}`` and so live on one Redis Cluster shard.
"""

from __future__ import annotations

import enum
import json
import secrets
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, NamedTuple, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.typing import EncodableT, FieldT

from waitingroom._batch import Batcher
from waitingroom._doorbell import Announcements
from waitingroom._line import LineView
from waitingroom.errors import ConfigError
from waitingroom.settings import Settings

_MODES = ("normal", "open", "closed")
_AUDIT_LENGTH = 10_000
_CAPTURE_MODES = ("auto", "on", "off")
REPLAY_GROUP = "replay"
ROOMS_KEY = "wr:rooms"
"""The registry of rooms created at run time (name -> JSON definition); not under
any room's hash tag, so on a Redis Cluster it lives on one shard of its own."""
MAX_ROOMS = 100
LINE_BUCKET = 128
"""Arrival numbers per bucket of the line (``BUCKET`` in ``_room.lua``)."""
HEARD_SLOTS = 5
"""The ring of heard-from bitmaps (``EPOCHS + 1`` in ``_room.lua``)."""
HEARD_PER_CALL = 512
"""Most arrival numbers of waiters heard from handed in by one script call."""
BITMAP_CHUNK = 65536
"""Arrival numbers per chunk of the line's bitmaps (``CHUNK`` in ``_room.lua``)."""
OLDEST_REDIS = (7, 0)
"""The line's bitmaps count bit ranges (``BITCOUNT … BIT``), new in Redis 7.0."""
# Connections per process. Past this, requests wait for one (up to the timeout)
# rather than fail: a spike queues in memory instead of erroring.
_POOL_SIZE = 64
_POOL_WAIT_SECONDS = 5
# A Redis that stops answering costs a visitor at most this long before the 503 retry
# page (it must exceed WAITAOF's 2 s wait for a capture's fsync).
_REDIS_TIMEOUT_SECONDS = 5
_REDIS_CONNECT_TIMEOUT_SECONDS = 2
RETRY_SECONDS = 0.5
"""The longest wait between two tries of a command that met a broken connection: once
Redis is back, every call succeeds within this (a pooled connection that died with the
old server fails once, is replaced and the command sent again)."""
_RETRIES = 3
# A pooled connection idle this long is checked (PING) before use.
_HEALTH_CHECK_SECONDS = 5


def _client_options() -> dict[str, Any]:
    """How every connection to Redis behaves: timeouts, retries, health checks.

    Only connection errors are retried (the scripts are idempotent per visitor or
    session, so a command whose reply was lost may run twice); a timeout is not, or a
    stalled Redis would hold a visitor for several timeouts.
    """
    return {"socket_timeout": _REDIS_TIMEOUT_SECONDS,
            "socket_connect_timeout": _REDIS_CONNECT_TIMEOUT_SECONDS,
            "health_check_interval": _HEALTH_CHECK_SECONDS,
            "retry": Retry(ExponentialWithJitterBackoff(cap=RETRY_SECONDS, base=0.05),
                           _RETRIES, supported_errors=(RedisConnectionError,))}


class VisitState(enum.IntEnum):
    """Where a visitor stands after :meth:`Engine.visit`."""

    NO_PLACE = -1
    WAITING = 0
    ADMITTED = 1
    PREQUEUE = 2
    """Arrived before a scheduled start: the draw at the start decides the order."""
    MOVED = -2
    """The place moved to another device (:meth:`Engine.resume`)."""


_VISIT_STATES = {state.value: state for state in VisitState}  # faster than VisitState(n)


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
    number: int = 0
    """The arrival number of the place held in line (0 when admitted, in a lane or
    holding none): give it back to :meth:`Engine.visit` to keep the place."""


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
    released: int


class RoomKeys(NamedTuple):
    """A room's Redis keys, all under the hash tag ``{room}`` (one Cluster slot).
    The first ones up to ``standby``, in this order, are KEYS[1..CORE] of every
    script; a script's own keys follow."""

    line: str
    seen: str
    active: str
    deadline: str
    seq: str
    config: str
    stats: str
    priority: str
    prequeue: str
    left: str
    heard: str
    away: str
    renamed: str
    standby: str
    captures: str
    refs: str
    dead: str
    breaker: str
    outcomes: str
    audit: str

    @property
    def core(self) -> tuple[str, ...]:
        """KEYS[1..CORE] of every script."""
        return self[:CORE_KEY_COUNT]


CORE_KEY_COUNT = RoomKeys._fields.index("standby") + 1
"""How many of a room's keys every script gets first (``CORE`` in the Lua scripts)."""


@cache
def room_keys(room: str) -> RoomKeys:
    """The Redis keys of ``room``."""
    return RoomKeys(*(f"wr:{{{room}}}:{name}" for name in RoomKeys._fields))


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


class NoticesDue(NamedTuple):
    """Visitors away until their turn (asked to be notified)."""

    away: int
    """How many are away."""
    admitted: list[str]
    """Those of them admitted: to be told now."""


@dataclass(frozen=True, slots=True)
class CapturedRecord:
    """One stored capture, as read back from the room's stream."""

    entry_id: str
    reference: str
    visitor: str
    place: int
    """Arrival number in the queue (0: was already admitted): the processing order."""
    submitted_at_ms: int
    fields: dict[str, str]


def _script_source(name: str) -> str:
    lua = resources.files("waitingroom") / "lua"
    return (f"local CORE = {CORE_KEY_COUNT}\n" + (lua / "_room.lua").read_text() + "\n"
            + (lua / f"{name}.lua").read_text())


class Engine:
    """Admission state of every room, kept in Redis.

    Each method is at most one round trip; concurrent :meth:`visit` and :meth:`touch`
    calls for a room share one. Scripts are idempotent per visitor or session id,
    because a command whose connection broke is sent again (see ``_client_options``).
    """

    def __init__(
        self,
        redis: Redis | RedisCluster,
        *,
        grace_seconds: int,
        session_idle_seconds: int,
        session_max_seconds: int,
        session_first_idle_seconds: int = 0,
    ) -> None:
        self.redis = redis
        self._grace_ms = grace_seconds * 1000
        self._idle_ms = session_idle_seconds * 1000
        self._max_ms = session_max_seconds * 1000
        self._first_idle_ms = session_first_idle_seconds * 1000
        self._visit: AsyncScript = redis.register_script(_script_source("visit"))
        self._touch: AsyncScript = redis.register_script(_script_source("touch"))
        self._release: AsyncScript = redis.register_script(_script_source("release"))
        self._capture: AsyncScript = redis.register_script(_script_source("capture"))
        self._breaker: AsyncScript = redis.register_script(_script_source("breaker"))
        self._probe: AsyncScript = redis.register_script(_script_source("probe"))
        self._invite: AsyncScript = redis.register_script(_script_source("invite"))
        self._resume: AsyncScript = redis.register_script(_script_source("resume"))
        self._away: AsyncScript = redis.register_script(_script_source("away"))
        self._watch: AsyncScript = redis.register_script(_script_source("watch"))
        self._heard: AsyncScript = redis.register_script(_script_source("heard"))
        # Does the server have WAITAOF (Redis 7.2+)? On a cluster a keyless command may go
        # to another node than the write, where it proves nothing: captures then rely on
        # the nodes' appendfsync.
        self._waitaof: bool | None = False if isinstance(redis, RedisCluster) else None
        self.announcements = Announcements(redis)
        """Every room's admissions as Redis announces them (one subscription)."""
        self._visits: Batcher[tuple[str, int, str, str], Visit] = Batcher(self._visit_many)
        self._touches: Batcher[str, bool] = Batcher(self._touch_many)

    @classmethod
    def from_settings(
        cls, settings: Settings, redis: Redis | RedisCluster | None = None
    ) -> Engine:
        """Build an engine for ``settings``, connecting to its ``redis_url`` if needed."""
        if redis is None:
            redis = connect(settings.redis_url)
        return cls(
            redis,
            grace_seconds=settings.grace_seconds,
            session_idle_seconds=settings.session_idle_seconds,
            session_max_seconds=settings.session_max_seconds,
            session_first_idle_seconds=settings.session_first_idle_seconds,
        )

    async def visit(
        self, room: str, visitor_id: str, *, number: int = 0, join: bool = True,
        new: bool = False, claim: bool = True,
    ) -> Visit:
        """Report where ``visitor_id`` stands, taking a place at the back if ``join``.

        ``number`` is the arrival number of the place the visitor holds in line (from
        an earlier :class:`Visit`; 0 if none): the line is kept by number, not by id.
        ``new``: the caller just made ``visitor_id`` (it holds nothing): it joins with
        no look-ups. Also releases abandoned places and expired sessions and admits the
        next in line into free slots. An admitted visitor's session is claimed (its
        request goes on to the origin: the session starts, or is kept alive) if
        ``claim``; else the visitor is only told, and the slot held for it one more
        claim window.
        """
        return await self._visits.submit(
            room, (visitor_id, number, "2" if new else "1" if join else "0",
                   "1" if claim else "0"))

    async def _visit_many(
        self, room: str, visitors: Sequence[tuple[str, int, str, str]]
    ) -> list[Visit]:
        # The call id makes the call idempotent: sent again after a lost reply, it
        # gets its first answer (and takes no second place).
        args: list[str | int] = [self._grace_ms, self._idle_ms, self._max_ms,
                                 self._first_idle_ms, secrets.token_hex(8)]
        for visitor in visitors:
            args += visitor
        *triples, admitted, now = await self._visit(room_keys(room).core, args)
        return [Visit(_VISIT_STATES[triples[i]], triples[i + 1], admitted, now, triples[i + 2])
                for i in range(0, len(triples), 3)]

    async def watch(self, room: str, heard: Iterable[int] = ()) -> LineView:
        """The room's line as it stands, for answering polls without Redis (see
        :mod:`waitingroom._line`); ``heard``: arrival numbers of waiters heard from
        since the last call, which keeps their places. Also does the room's upkeep
        (walk-aways, expired sessions, admissions into free slots)."""
        keys, heard = room_keys(room).core, list(heard)
        while len(heard) > HEARD_PER_CALL:  # bounded work per script call
            await self._heard(keys, (self._grace_ms, *heard[-HEARD_PER_CALL:]))
            del heard[-HEARD_PER_CALL:]
        head, end, ahead, admitted, now, first_byte, left, renamed = await self._watch(
            keys, (self._grace_ms, *heard))
        return LineView(head, end, ahead, admitted, now, first_byte, left,
                        frozenset(int(n) for n in renamed))

    async def touch(self, room: str, session_id: str) -> bool:
        """Keep an admitted session alive; False if it has ended."""
        return await self._touches.submit(room, session_id)

    async def _touch_many(self, room: str, session_ids: Sequence[str]) -> list[bool]:
        alive = await self._touch(room_keys(room).core, (
            self._grace_ms, self._idle_ms, self._max_ms, self._first_idle_ms, *session_ids))
        return [bool(a) for a in alive]

    async def release(self, room: str, session_id: str, *, linger_seconds: float = 0) -> bool:
        """End a session now, giving its slot to the next in line; with
        ``linger_seconds``, that long from now unless the session is used meanwhile."""
        return bool(await self._release(room_keys(room).core,
                                        (session_id, self._grace_ms,
                                         int(linger_seconds * 1000))))

    async def seed_room(
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
            pipe.hsetnx(config_key, "message_at", await self._server_ms())
            await pipe.execute()

    async def set_room_config(
        self,
        room: str,
        *,
        capacity: int | None = None,
        paused: bool | None = None,
        mode: str | None = None,
        message: str | None = None,
        capture: str | None = None,
        rate: int | None = None,
        start_at_ms: int | None = None,
    ) -> None:
        """Change a room's live config; every process sees it within a second."""
        if capacity is not None and capacity < 1:
            raise ValueError("capacity must be at least 1")
        if mode is not None and mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}")
        if rate is not None and rate < 0:
            raise ValueError("rate must be 0 (no limit) or more")
        if capture is not None and capture not in _CAPTURE_MODES:
            raise ValueError(f"capture must be one of {', '.join(_CAPTURE_MODES)}")
        changes: dict[str, int | str | None] = {
            "capacity": capacity, "mode": mode, "message": message, "capture": capture,
            "rate": rate, "start_at": start_at_ms,
            "paused": None if paused is None else str(int(paused))}
        mapping: dict[FieldT, EncodableT] = {
            k: v for k, v in changes.items() if v is not None}
        if message is not None:
            mapping["message_at"] = await self._server_ms()
        if mapping:
            await self.redis.hset(room_keys(room).config, mapping=mapping)

    async def set_clock(self, room: str, now_ms: int) -> None:
        """Run ``room`` on simulated time from now on: the capacity planner's private
        Redis only (``waitingroom simulate``); a live room always uses Redis time."""
        await self.redis.hset(room_keys(room).config, "clock", now_ms)

    async def room_config(self, room: str) -> RoomConfig:
        """Read a room's live config."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(room_keys(room).config))
        return RoomConfig(
            capacity=int(raw.get(b"capacity", 0)),
            paused=raw.get(b"paused") == b"1",
            mode=raw.get(b"mode", b"normal").decode(),
            message=raw.get(b"message", b"").decode(),
            rate=int(raw.get(b"rate", 0)),
            capture=raw.get(b"capture", b"auto").decode(),
            message_at_ms=int(raw.get(b"message_at", 0)),
            start_at_ms=int(raw.get(b"start_at", 0)),
        )

    async def _server_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def _room_ms(self, room: str) -> int:
        """The room's clock now (Redis time less the outages it skipped: ``now_ms`` in
        ``_room.lua``)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hget(room_keys(room).stats, "skipped")
            (seconds, micros), skipped = await pipe.execute()
        return int(seconds) * 1000 + int(micros) // 1000 - int(float(skipped or 0))

    async def counts(self, room: str) -> RoomCounts:
        """Read a room's queue length, active sessions and counters."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(keys.priority)
            pipe.zcard(keys.prequeue)
            pipe.zcard(keys.active)
            pipe.hgetall(keys.stats)
            pipe.get(keys.seq)
            invited, early, sessions, counters, end = await pipe.execute()
        head, end = int(counters.get(b"head", 0)), int(end or 0)
        in_line = 0
        if end > head:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, lo, hi in _chunks(keys.left, head + 1, end):
                    pipe.execute_command("BITCOUNT", key, lo, hi, "BIT")
                walked = sum(await pipe.execute())
            in_line = end - head - walked
        return RoomCounts(
            waiting=in_line + invited + early,
            active=sessions,
            **{name: int(counters.get(name.encode(), 0))
               for name in ("admitted", "abandoned", "expired", "released")},
        )

    # -- rooms created at run time ---------------------------------------------------

    async def rooms(self) -> list[RoomDefinition]:
        """Rooms created at run time, oldest first."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(ROOMS_KEY))
        rooms = []
        for name, value in raw.items():
            data = json.loads(value)
            rooms.append(RoomDefinition(name.decode(), tuple(data["paths"]), data["capacity"],
                                        data["created_at_ms"]))
        return sorted(rooms, key=lambda r: (r.created_at_ms, r.name))

    async def create_room(
        self, name: str, *, paths: Sequence[str], capacity: int, rate: int = 0,
        message: str = "",
    ) -> RoomDefinition:
        """Register a room gating ``paths``, with a fresh live config.

        Raises :class:`RoomExists` if the name is taken, ``ValueError`` past
        ``MAX_ROOMS``.
        """
        if await self.redis.hlen(ROOMS_KEY) >= MAX_ROOMS:
            raise ValueError(f"at most {MAX_ROOMS} rooms")
        room = RoomDefinition(name, tuple(paths), capacity, await self._server_ms())
        definition = json.dumps({"paths": list(room.paths), "capacity": capacity,
                                 "created_at_ms": room.created_at_ms})
        if not await self.redis.hsetnx(ROOMS_KEY, name, definition):
            raise RoomExists(name)
        await self.redis.hset(room_keys(name).config, mapping={
            "capacity": capacity, "rate": rate, "paused": "0", "mode": "normal",
            "message": message, "capture": "auto", "start_at": 0,
            "message_at": room.created_at_ms})
        return room

    async def revoke_room(self, name: str) -> bool:
        """Unregister a room and clear its line and sessions; False if it was not
        registered. Captures, replay state and the audit log are kept."""
        if not await self.redis.hdel(ROOMS_KEY, name):
            return False
        await self.clear_room(name)
        return True

    async def clear_room(self, room: str) -> None:
        """Forget ``room``'s line, sessions, config and counters (captures, replay
        state and the audit log are kept)."""
        keys = room_keys(room)
        trimmed = int(await self.redis.hget(keys.stats, "trimmed") or 0)
        end = int(await self.redis.get(keys.seq) or 0)
        buckets = [f"{keys.line}:{b}" for b in range(trimmed // LINE_BUCKET,
                                                     end // LINE_BUCKET + 1)]
        for prefix in (keys.left, *(f"{keys.heard}:{slot}" for slot in range(HEARD_SLOTS))):
            buckets += [key for key, _, _ in _chunks(prefix, trimmed, end)]
        for start in range(0, len(buckets), 1000):
            await self.redis.delete(*buckets[start:start + 1000])
        await self.redis.delete(
            keys.seen, keys.active, keys.deadline, keys.seq, keys.config, keys.stats,
            keys.priority, keys.prequeue, keys.away, keys.renamed, keys.standby, keys.breaker,
            keys.outcomes, _notify_key(room), f"{_notify_key(room)}:until")

    # -- data capture ---------------------------------------------------------------

    async def capture(
        self,
        room: str,
        reference: str,
        visitor_id: str,
        fields: dict[str, str],
        *,
        per_minute: int,
        submitted_at_ms: int = 0,
        number: int = 0,
    ) -> bool:
        """Store a capture durably; False if the visitor is over the rate limit.

        ``number``: the visitor's arrival number in line, if any; the record keeps it as
        its place (0 for those already admitted), the order replay follows.

        Returns only once the record is as durable as Redis is configured to make it:
        where the server has WAITAOF (Redis 7.2+), after the AOF is fsync'd locally;
        elsewhere that needs ``appendfsync always``. Idempotent per reference.
        """
        keys = room_keys(room)
        script_keys = (*keys.core, keys.captures, keys.refs, f"wr:{{{room}}}:rate:{visitor_id}")
        args = (reference, visitor_id, json.dumps(fields, separators=(",", ":")), per_minute,
                submitted_at_ms, number)
        if self._waitaof is False:
            stored, _ = await self._capture(script_keys, args)
            return bool(stored)
        # WAITAOF waits for the writes of its own connection: it must follow the script
        # on the same one, hence one pipeline.
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._capture(script_keys, args, client=pipe)  # type: ignore[arg-type]
            pipe.execute_command("WAITAOF", 1, 0, 2000)
            scripted, fsynced = await pipe.execute(raise_on_error=False)
        if isinstance(scripted, Exception):
            raise scripted
        stored = scripted[0]
        if isinstance(fsynced, ResponseError):
            if "unknown command" not in str(fsynced).lower():
                raise fsynced
            self._waitaof = False  # an older server: durability is appendfsync's
        elif stored and fsynced[0] < 1:
            raise ConnectionError("capture not fsync'd to the AOF (is appendonly on?)")
        return bool(stored)

    async def read_captures(
        self, room: str, consumer: str, *, count: int = 100, pending: bool = False
    ) -> list[CapturedRecord]:
        """Next captures for a replay ``consumer``, oldest first; with ``pending``,
        those it was handed before but never acknowledged (after a crash)."""
        keys = room_keys(room)
        try:
            await self.redis.xgroup_create(keys.captures, REPLAY_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        reply = cast(list[Any], await self.redis.xreadgroup(
            REPLAY_GROUP, consumer, {keys.captures: "0" if pending else ">"}, count=count))
        return [_record(entry_id, data) for _, entries in reply for entry_id, data in entries
                if data]

    async def ack_captures(self, room: str, *entry_ids: str) -> None:
        """Mark captures as replayed into the backend."""
        await self.redis.xack(room_keys(room).captures, REPLAY_GROUP, *entry_ids)

    async def dead_letter(self, room: str, record: CapturedRecord, error: str) -> None:
        """Park a capture the backend keeps refusing, and stop retrying it."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.dead, {"reference": record.reference, "entry": record.entry_id,
                                  "error": error[:500]})
            pipe.xack(keys.captures, REPLAY_GROUP, record.entry_id)
            await pipe.execute()

    async def capture_count(self, room: str) -> int:
        """Captures stored for ``room`` so far."""
        return int(await self.redis.xlen(room_keys(room).captures))

    async def capture_backlog(self, room: str) -> int:
        """Captures not yet acknowledged by the replay (pending plus never read)."""
        keys = room_keys(room)
        groups = await self.redis.xinfo_groups(keys.captures)
        for group in groups:
            if group["name"] in (REPLAY_GROUP, REPLAY_GROUP.encode()):
                lag = group.get("lag")
                return int(group["pending"]) + int(lag if lag is not None else 0)
        return int(await self.redis.xlen(keys.captures))

    async def all_captures(self, room: str, *, batch: int = 500) -> AsyncIterator[CapturedRecord]:
        """Every stored capture, oldest first (for export)."""
        start = "-"
        while True:
            entries = cast(list[Any], await self.redis.xrange(room_keys(room).captures, start,
                                                              "+", count=batch))
            for entry_id, data in entries:
                yield _record(entry_id, data)
            if len(entries) < batch:
                return
            start = "(" + cast(bytes, entries[-1][0]).decode()

    # -- ops ------------------------------------------------------------------------

    async def audit(self, room: str, who: str, action: str, before: dict[str, Any],
                    after: dict[str, Any]) -> None:
        """Append to the room's audit log (who, what, before/after; Redis time as id)."""
        await self.redis.xadd(room_keys(room).audit, {
            "who": who, "action": action, "before": json.dumps(before),
            "after": json.dumps(after)}, maxlen=_AUDIT_LENGTH, approximate=True)

    async def read_audit(self, room: str, count: int = 50) -> list[dict[str, Any]]:
        """The newest audit entries, newest first."""
        entries = cast(list[Any], await self.redis.xrevrange(room_keys(room).audit,
                                                             count=count))
        return [{"at_ms": int(entry_id.split(b"-")[0]), "who": data[b"who"].decode(),
                 "action": data[b"action"].decode(), "before": json.loads(data[b"before"]),
                 "after": json.loads(data[b"after"])} for entry_id, data in entries]

    async def create_invite(self, room: str, invite_id: str, *, uses: int,
                            expires_in_seconds: int) -> None:
        """Allow ``uses`` redemptions of invite ``invite_id`` for the next while."""
        await self.redis.set(_invite_key(room, invite_id), uses, ex=expires_in_seconds)

    async def redeem_invite(self, room: str, invite_id: str, visitor_id: str, *,
                            number: int = 0) -> Visit | None:
        """Use an invite for ``visitor_id`` (who may hold place ``number`` in line, given
        up): to the front of the line (or straight in when a slot is free). None if the
        invite is used up, expired or unknown."""
        keys = room_keys(room)
        state, position, admitted, now = await self._invite(
            (*keys.core, _invite_key(room, invite_id)),
            (visitor_id, number, self._grace_ms, self._idle_ms, self._max_ms))
        if state < 0:
            return None
        return Visit(VisitState(state), position, admitted, now)

    async def spend(self, room: str, token_id: str, *, ttl_seconds: int) -> bool:
        """Mark a once-only token (a proof-of-work challenge, a claim link) as used,
        remembered for as long as it could be presented; False if it already was."""
        key = f"wr:{{{room}}}:spent:{token_id}"
        return bool(await self.redis.set(key, 1, nx=True, ex=ttl_seconds))

    async def ask_to_notify(self, room: str, visitor_id: str, record: dict[str, str], *,
                            number: int = 0, away_seconds: int) -> bool:
        """Remember how to tell ``visitor_id`` (holding place ``number``, if in line) it
        is their turn, and keep their place while they are away (up to
        ``away_seconds``). False if they hold no place."""
        return bool(await self._away(
            (*room_keys(room).core, _notify_key(room)),
            (visitor_id, number, away_seconds * 1000, json.dumps(record))))

    async def notices_due(self, room: str) -> NoticesDue:
        """How many visitors are away waiting to be told, and which of them have been
        admitted."""
        waiting = cast(list[bytes], await self.redis.hkeys(_notify_key(room)))
        if not waiting:
            return NoticesDue(0, [])
        async with self.redis.pipeline(transaction=False) as pipe:
            for visitor_id in waiting:
                pipe.zscore(room_keys(room).active, visitor_id)
            scores = await pipe.execute()
        return NoticesDue(len(waiting), [v.decode() for v, score
                                         in zip(waiting, scores, strict=True) if score])

    async def take_notice(self, room: str, visitor_id: str, *,
                          claim_seconds: int) -> dict[str, str] | None:
        """Take an admitted visitor's notify request (once, whichever process asks
        first) and hold their slot ``claim_seconds`` for them to come back."""
        now = await self._room_ms(room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(_notify_key(room), visitor_id)
            pipe.hdel(_notify_key(room), visitor_id)
            pipe.zrem(f"{_notify_key(room)}:until", visitor_id)
            pipe.zadd(room_keys(room).active, {visitor_id: now + claim_seconds * 1000},
                      xx=True, gt=True)
            record, taken, _, _ = await pipe.execute()
        return json.loads(record) if taken else None

    async def resume(self, room: str, old_id: str, new_id: str, *, number: int = 0,
                     marker_seconds: int) -> Visit | None:
        """Move ``old_id``'s place (arrival ``number`` in line, 0 in a lane) to
        ``new_id`` (another device), keeping its position; ``old_id`` then answers
        :attr:`VisitState.MOVED` for ``marker_seconds``. None if ``old_id`` holds no
        place."""
        keys = room_keys(room)
        position, kept, admitted, now = await self._resume(
            (*keys.core, _moved_key(room, old_id)),
            (old_id, number, new_id, self._grace_ms, marker_seconds))
        if position < 0:
            return None
        state = VisitState.PREQUEUE if position == 0 else VisitState.WAITING
        return Visit(state, position, admitted, now, kept)

    async def invite_uses_left(self, room: str, invite_id: str) -> int:
        """Redemptions left (0 once used up or expired)."""
        return int(await self.redis.get(_invite_key(room, invite_id)) or 0)

    async def breaker_state(self, room: str) -> str:
        """The breaker's state as stored (``closed`` if it never opened)."""
        state = cast(bytes | None, await self.redis.hget(room_keys(room).breaker, "state"))
        return state.decode() if state else "closed"

    # -- circuit breaker ------------------------------------------------------------

    async def breaker_report(
        self, room: str, successes: int, failures: int, policy: BreakerPolicy
    ) -> BreakerState:
        """Add order-flow outcomes to the shared breaker and return its state."""
        keys = room_keys(room)
        state, opened_at = await self._breaker(
            (*keys.core, keys.breaker, keys.outcomes),
            (successes, failures, policy.window_seconds, policy.failure_ratio,
             policy.min_requests, policy.cooldown_seconds * 1000, policy.probes),
        )
        return BreakerState(state.decode(), int(opened_at))

    async def take_probe(self, room: str, policy: BreakerPolicy) -> bool:
        """While the breaker is half-open: may this request go to the origin as a probe?"""
        keys = room_keys(room)
        return bool(await self._probe((*keys.core, keys.breaker),
                                      (policy.probes, policy.cooldown_seconds * 1000)))

    async def ping(self) -> bool:
        """True if Redis answers."""
        return bool(await self.redis.ping())

    async def check_server(self) -> None:
        """Raise :class:`ConfigError` naming ``redis_url`` if the server answers but is
        older than :data:`OLDEST_REDIS`. A server that does not answer yet is no error:
        the waiting room serves its retry page until it does."""
        try:
            info = await self.redis.info("server")
        except RedisError:
            return
        version = too_old_version(info)
        if version is not None:
            raise ConfigError("redis_url", f"the server is Redis {version}; waitingroom "
                              f"needs Redis {OLDEST_REDIS[0]}.{OLDEST_REDIS[1]} or later "
                              "(or Valkey)")

    async def aclose(self) -> None:
        """Close the Redis connection pool (and, with Sentinel, the Sentinels' ones)."""
        await self.announcements.aclose()
        await self.redis.aclose()
        pool = getattr(self.redis, "connection_pool", None)
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            await sentinel.aclose()


def connect(redis_url: str) -> Redis | RedisCluster:
    """A client for ``redis_url`` (``redis://``, ``rediss://``, ``unix://``, with
    ``+cluster`` a Redis Cluster, ``redis+sentinel://`` a primary named by Sentinels),
    with the timeouts, retries and health checks of ``_client_options``."""
    scheme, _, rest = redis_url.partition("://")
    options = _client_options()
    if scheme == "redis+sentinel":
        return _sentinel_primary(rest, options)
    if scheme.endswith("+cluster"):
        return RedisCluster.from_url(f"{scheme.removesuffix('+cluster')}://{rest}",
                                     max_connections=_POOL_SIZE, **options)
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=_POOL_SIZE,
                                           timeout=_POOL_WAIT_SECONDS, **options)
    return Redis.from_pool(pool)


def too_old_version(info: dict[str, Any]) -> str | None:
    """The version of a server in an ``INFO server`` answer (one server's, or a cluster
    client's: {node: that node's answer}) too old for the room's scripts; None if
    every one will do."""
    nodes = [info] if "redis_version" in info else list(info.values())
    for node in nodes:
        version = str(node.get("redis_version", ""))
        if not server_supported(version):
            return version
    return None


def server_supported(version: str) -> bool:
    """True if a server reporting ``redis_version`` ``version`` (e.g. "7.0.15") runs the
    room's scripts; an unreadable version is given the benefit of the doubt."""
    parts = version.split(".")[:2]
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        return True
    return (int(parts[0]), int(parts[1])) >= OLDEST_REDIS


def _sentinel_primary(address: str, options: dict[str, Any]) -> Redis:
    """A client of the primary the Sentinels at ``host:port[,host:port]/service[/db]``
    name; it follows a failover to the new primary."""
    hosts, _, path = address.partition("/")
    service, _, db = path.partition("/")
    sentinels = []
    for entry in hosts.split(","):
        host, _, port = entry.rpartition(":")
        sentinels.append((host, int(port)) if host else (entry, 26379))
    timeouts = {name: options[name] for name in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts, **options)  # type: ignore[no-untyped-call]
    return cast(Redis, sentinel.master_for(service, db=int(db or 0)))


def _chunks(prefix: str, first: int, last: int) -> Iterator[tuple[str, int, int]]:
    """The chunk keys of a line bitmap holding numbers ``first``..``last``, with the
    bit range of each (``each_chunk`` in ``_room.lua``)."""
    for chunk in range(first // BITMAP_CHUNK, last // BITMAP_CHUNK + 1):
        base = chunk * BITMAP_CHUNK
        yield (f"{prefix}:{chunk}", max(first, base) - base,
               min(last, base + BITMAP_CHUNK - 1) - base)


def _moved_key(room: str, visitor_id: str) -> str:
    return f"wr:{{{room}}}:moved:{visitor_id}"  # visit.lua builds the same name


def _notify_key(room: str) -> str:
    return f"wr:{{{room}}}:notify"


def _invite_key(room: str, invite_id: str) -> str:
    return f"wr:{{{room}}}:invite:{invite_id}"


def _record(entry_id: bytes, data: dict[bytes, bytes]) -> CapturedRecord:
    return CapturedRecord(
        entry_id=entry_id.decode(),
        reference=data[b"reference"].decode(),
        visitor=data[b"visitor"].decode(),
        place=int(float(data[b"place"])),
        submitted_at_ms=int(data[b"submitted_at"]),
        fields=json.loads(data[b"fields"]),
    )
