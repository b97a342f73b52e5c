"""The engine: one object per process holding the connection to Redis, the line's
scripts (visit, watch, touch, release) and the feature stores beside them.

Every state change is one Lua script (``lua/``), so any number of processes on any
number of machines behave as one waiting room.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from waitingroom.engine.announcements import Announcements
from waitingroom.engine.batch import Batcher
from waitingroom.engine.breaker_store import BreakerStore
from waitingroom.engine.captures import CaptureStore
from waitingroom.engine.keys import register_script, room_keys
from waitingroom.engine.line import LineView
from waitingroom.engine.origin_figures import OriginFigures
from waitingroom.engine.places import PlaceStore
from waitingroom.engine.redis_connect import OLDEST_REDIS, connect, too_old_version
from waitingroom.engine.rooms import RoomStore
from waitingroom.engine.stock import StockStore
from waitingroom.engine.timeline import TimelineStore
from waitingroom.engine.visits import VISIT_STATES, Timing, Visit
from waitingroom.errors import ConfigError
from waitingroom.settings import Settings

HEARD_PER_CALL = 512
"""Most arrival numbers of waiters heard from handed in by one script call."""


class Engine:
    """Admission state of every room, kept in Redis.

    Each method is at most one round trip; concurrent :meth:`visit` and :meth:`touch`
    calls for a room share one. Scripts are idempotent per visitor or session id,
    because a command whose connection broke is sent again (see
    :mod:`waitingroom.engine.redis_connect`). The features' own Redis access is in
    :attr:`rooms`, :attr:`captures`, :attr:`breaker` and :attr:`places`.
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
        self.timing = Timing(grace_seconds * 1000, session_idle_seconds * 1000,
                             session_max_seconds * 1000, session_first_idle_seconds * 1000)
        self.stock = StockStore(redis)
        """What each room sells: the stock left and the units sold."""
        self.rooms = RoomStore(redis)
        """Config, counts, the registry of rooms made at run time, the audit log."""
        self.captures = CaptureStore(redis)
        """Captured orders and their replay."""
        self.breaker = BreakerStore(redis)
        """The shared circuit breaker of each room's order flow."""
        self.places = PlaceStore(redis, self.timing)
        """Invites, notify-me, places moved to another device, once-only tokens."""
        self.timeline = TimelineStore(redis)
        """Setting changes planned for set times, each applied once."""
        self.origin = OriginFigures(redis)
        """How each room's origin answers, by interval, for adaptive capacity."""
        self.announcements = Announcements(redis)
        """Every room's admissions as Redis announces them (one subscription)."""
        self._visit = register_script(redis, "visit")
        self._touch = register_script(redis, "touch")
        self._release = register_script(redis, "release")
        self._watch = register_script(redis, "watch")
        self._heard = register_script(redis, "heard")
        self._hide = register_script(redis, "hide")
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
            # Without renewal a session's clock is set once, to its full length.
            session_idle_seconds=settings.session_idle_seconds if settings.session_renewal
            else settings.session_max_seconds,
            session_max_seconds=settings.session_max_seconds,
            session_first_idle_seconds=settings.session_first_idle_seconds
            if settings.session_renewal else 0,
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
        timing = self.timing
        args: list[str | int] = [timing.grace_ms, timing.idle_ms, timing.max_ms,
                                 timing.first_idle_ms, secrets.token_hex(8)]
        for visitor in visitors:
            args += visitor
        *triples, admitted, now = await self._visit(room_keys(room).core, args)
        return [Visit(VISIT_STATES[triples[i]], triples[i + 1], admitted, now, triples[i + 2])
                for i in range(0, len(triples), 3)]

    async def watch(self, room: str, heard: Iterable[int] = (), since_ms: int = 0) -> LineView:
        """The room's line as it stands, for answering polls without Redis (see
        :mod:`waitingroom.engine.line`); ``heard``: arrival numbers of waiters heard
        from since room time ``since_ms`` (the last call's), which keeps their places.
        Also does the room's upkeep (walk-aways, expired sessions, admissions into free
        slots)."""
        keys, heard, grace = room_keys(room).core, list(heard), self.timing.grace_ms
        while len(heard) > HEARD_PER_CALL:  # bounded work per script call
            await self._heard(keys, (grace, since_ms, *heard[-HEARD_PER_CALL:]))
            del heard[-HEARD_PER_CALL:]
        head, end, ahead, admitted, now, first_byte, left, renamed = await self._watch(
            keys, (grace, since_ms, *heard))
        return LineView(head, end, ahead, admitted, now, first_byte, left,
                        frozenset(int(n) for n in renamed))

    async def touch(self, room: str, session_id: str) -> bool:
        """Keep an admitted session alive; False if it has ended."""
        return await self._touches.submit(room, session_id)

    async def _touch_many(self, room: str, session_ids: Sequence[str], *,
                          mode: str = "use") -> list[bool]:
        timing = self.timing
        alive = await self._touch(room_keys(room).core, (
            timing.grace_ms, timing.idle_ms, timing.max_ms, timing.first_idle_ms, mode,
            *session_ids))
        return [bool(a) for a in alive]

    async def hold(self, room: str, session_ids: Sequence[str]) -> list[bool]:
        """Keep alive sessions whose first request is on its way or just answered: a
        session of one request only gets its first idle from now (and stays one), any
        other is kept alive as by :meth:`touch`. False for each that has ended."""
        return await self._touch_many(room, session_ids, mode="hold") if session_ids else []

    async def session_on(self, room: str, session_id: str) -> bool:
        """Is the session still on (admitted, not past its expiry)? Only asks: unlike
        :meth:`touch`, it does not keep the session alive."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zscore(room_keys(room).active, session_id)
            pipe.time()
            expiry, (seconds, micros) = await pipe.execute()
        return expiry is not None and expiry > int(seconds) * 1000 + int(micros) // 1000

    async def release(self, room: str, session_id: str, *, linger_seconds: float = 0) -> bool:
        """End a session now, giving its slot to the next in line; with
        ``linger_seconds``, that long from now unless the session is used meanwhile."""
        return bool(await self._release(room_keys(room).core,
                                        (session_id, self.timing.grace_ms,
                                         int(linger_seconds * 1000))))

    async def hide(self, room: str, visitor_id: str, number: int) -> bool:
        """The waiter holding place ``number`` closed its page: its turn goes by without
        holding a slot until it asks again (its place is kept for the grace)."""
        return bool(await self._hide(room_keys(room).core,
                                     (self.timing.grace_ms, visitor_id, number)))

    async def ping(self) -> bool:
        """True if Redis answers."""
        return bool(await self.redis.ping())

    async def check_server(self) -> bool:
        """Whether Redis answers. Raise :class:`ConfigError` naming ``redis_url`` if it
        answers but is older than :data:`OLDEST_REDIS`. A server that does not answer
        yet is no error: the waiting room serves its retry page until it does."""
        try:
            info = await self.redis.info("server")
        except RedisError:
            return False
        version = too_old_version(info)
        if version is not None:
            raise ConfigError("redis_url", f"the server is Redis {version}; waitingroom "
                              f"needs Redis {OLDEST_REDIS[0]}.{OLDEST_REDIS[1]} or later "
                              "(or Valkey)")
        return True

    async def aclose(self) -> None:
        """Close the Redis connection pool (and, with Sentinel, the Sentinels' ones)."""
        await self.announcements.aclose()
        await self.redis.aclose()
        pool = getattr(self.redis, "connection_pool", None)
        for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", ()):
            await sentinel.aclose()
