"""A room's Redis keys and scripts, and the clocks the scripts run on.

All keys of a room share the hash tag ``{room}`` and so live on one Redis Cluster
shard. Every script is the shared library (``lua/_room.lua``, ``_line.lua``,
``_sweep.lua``, ``_admit.lua``) followed by the script's own file; the first
:data:`CORE_KEY_COUNT` keys of every call are the room's core keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import NamedTuple

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

LINE_BUCKET = 128
"""Arrival numbers per bucket of the line (``BUCKET`` in ``_line.lua``)."""
HEARD_SLOTS = 5
"""The ring of heard-from bitmaps (``EPOCHS + 1`` in ``_room.lua``)."""
BITMAP_CHUNK = 65536
"""Arrival numbers per chunk of the line's bitmaps (``CHUNK`` in ``_room.lua``)."""


class RoomKeys(NamedTuple):
    """A room's Redis keys, all under the hash tag ``{room}`` (one Cluster slot).
    The first ones up to ``hidden``, in this order, are KEYS[1..CORE] of every
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
    hidden: str
    captures: str
    refs: str
    dead: str
    breaker: str
    outcomes: str
    audit: str
    notify: str
    timeline: str
    steps: str
    interest: str
    planned: str
    adapt: str

    @property
    def core(self) -> tuple[str, ...]:
        """KEYS[1..CORE] of every script."""
        return self[:CORE_KEY_COUNT]


_LIBRARY = ("_room", "_line", "_sweep", "_admit")
"""The room library, in order (each part uses the ones before it)."""

CORE_KEY_COUNT = RoomKeys._fields.index("hidden") + 1
"""How many of a room's keys every script gets first (``CORE`` in the Lua scripts)."""


@cache
def room_keys(room: str) -> RoomKeys:
    """The Redis keys of ``room``."""
    return RoomKeys(*(f"wr:{{{room}}}:{name}" for name in RoomKeys._fields))


def visitor_key(room: str, kind: str, name: str) -> str:
    """A room's key of one ``kind`` for one visitor or token (``moved``, ``invite``,
    ``spent``, ``rate``), under the room's hash tag."""
    return f"wr:{{{room}}}:{kind}:{name}"


def register_script(redis: Redis | RedisCluster, name: str, *,
                    library: bool = True) -> AsyncScript:
    """The script ``lua/<name>.lua``, with the room library before it (a room script:
    its first keys are the room's core keys) unless not ``library``."""
    lua = resources.files("waitingroom.engine") / "lua"
    if not library:
        return redis.register_script((lua / f"{name}.lua").read_text())
    parts = [(lua / f"{part}.lua").read_text() for part in (*_LIBRARY, name)]
    return redis.register_script(f"local CORE = {CORE_KEY_COUNT}\n" + "\n".join(parts))


def chunks(prefix: str, first: int, last: int) -> Iterator[tuple[str, int, int]]:
    """The chunk keys of a line bitmap holding numbers ``first``..``last``, with the
    bit range of each (``each_chunk`` in ``_line.lua``)."""
    for chunk in range(first // BITMAP_CHUNK, last // BITMAP_CHUNK + 1):
        base = chunk * BITMAP_CHUNK
        yield (f"{prefix}:{chunk}", max(first, base) - base,
               min(last, base + BITMAP_CHUNK - 1) - base)


async def server_ms(redis: Redis | RedisCluster) -> int:
    """Redis's clock now, in milliseconds."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def room_ms(redis: Redis | RedisCluster, room: str) -> int:
    """The room's clock now (Redis time, or the planner's simulated time, less the
    outages it skipped: ``now_ms`` in ``_room.lua``)."""
    keys = room_keys(room)
    now = await server_ms(redis)  # alone: TIME names no key, which a Cluster pipeline needs
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hget(keys.stats, "skipped")
        pipe.hget(keys.config, "clock")
        skipped, clock = await pipe.execute()
    return room_time(now, skipped, clock)


def room_time(server_now_ms: int, skipped: bytes | None, clock: bytes | None) -> int:
    """The room's clock from Redis time, the room's ``skipped`` outages and the
    planner's ``clock`` (simulated time, if set), as ``now_ms`` in ``_room.lua`` keeps it
    (an outage still under way is not yet skipped)."""
    return (int(clock) if clock else server_now_ms) - int(float(skipped or 0))
