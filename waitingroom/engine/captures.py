"""Captured orders: stored durably (``lua/capture.lua``, fsync'd before the visitor
is told), read back in order by the replay, and parked when the backend refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from waitingroom.engine.keys import register_script, room_keys, visitor_key

REPLAY_GROUP = "replay"


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


class CaptureStore:
    """Every room's captures (``Engine.captures``)."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._capture = register_script(redis, "capture")
        # Does the server have WAITAOF (Redis 7.2+)? On a cluster a keyless command may go
        # to another node than the write, where it proves nothing: captures then rely on
        # the nodes' appendfsync.
        self._waitaof: bool | None = False if isinstance(redis, RedisCluster) else None

    async def store(
        self,
        room: str,
        reference: str,
        visitor_id: str,
        fields: dict[str, str],
        *,
        per_minute: int,
        submitted_at_ms: int = 0,
        number: int = 0,
        interest: bool = False,
    ) -> bool:
        """Store a capture durably; False if the visitor is over the rate limit.
        ``interest``: the details of someone to tell if more stock comes in, kept apart
        from orders (never replayed).

        ``number``: the visitor's arrival number in line, if any; the record keeps it as
        its place (0 for those already admitted), the order replay follows.

        Returns only once the record is as durable as Redis is configured to make it:
        where the server has WAITAOF (Redis 7.2+), after the AOF is fsync'd locally;
        elsewhere that needs ``appendfsync always``. Idempotent per reference.
        """
        keys = room_keys(room)
        script_keys = (*keys.core, keys.interest if interest else keys.captures, keys.refs,
                       visitor_key(room, "rate", visitor_id))
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

    async def read(
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

    async def ack(self, room: str, *entry_ids: str) -> None:
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

    async def count(self, room: str, *, interest: bool = False) -> int:
        """Captures (or, with ``interest``, details left for news of stock) stored for
        ``room`` so far."""
        keys = room_keys(room)
        return int(await self.redis.xlen(keys.interest if interest else keys.captures))

    async def backlog(self, room: str) -> int:
        """Captures not yet acknowledged by the replay (pending plus never read)."""
        keys = room_keys(room)
        groups = await self.redis.xinfo_groups(keys.captures)
        for group in groups:
            if group["name"] in (REPLAY_GROUP, REPLAY_GROUP.encode()):
                lag = group.get("lag")
                return int(group["pending"]) + int(lag if lag is not None else 0)
        return int(await self.redis.xlen(keys.captures))

    async def all(self, room: str, *, batch: int = 500,
                  interest: bool = False) -> AsyncIterator[CapturedRecord]:
        """Every stored capture (or, with ``interest``, details left for news of stock),
        oldest first (for export)."""
        keys = room_keys(room)
        stream = keys.interest if interest else keys.captures
        start = "-"
        while True:
            entries = cast(list[Any], await self.redis.xrange(stream, start, "+",
                                                              count=batch))
            for entry_id, data in entries:
                yield _record(entry_id, data)
            if len(entries) < batch:
                return
            start = "(" + cast(bytes, entries[-1][0]).decode()


def _record(entry_id: bytes, data: dict[bytes, bytes]) -> CapturedRecord:
    return CapturedRecord(
        entry_id=entry_id.decode(),
        reference=data[b"reference"].decode(),
        visitor=data[b"visitor"].decode(),
        place=int(float(data[b"place"])),
        submitted_at_ms=int(data[b"submitted_at"]),
        fields=json.loads(data[b"fields"]),
    )
