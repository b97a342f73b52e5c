"""This process's memory of one room's admitted sessions: which are alive (asked of
Redis at most once a second each), which were used since Redis last heard of them,
and which the origin ended while Redis could not be told."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from redis.exceptions import RedisError

from waitingroom.engine import Engine

logger = logging.getLogger("waitingroom")

SESSION_CHECK_SECONDS = 1.0
"""An admitted visitor's session is checked in Redis this often."""
_SESSIONS_REMEMBERED = 100_000
_UNRELEASED_KEPT = 100_000  # past this, a missed release waits for the idle timeout


class Sessions:
    """One room's admitted sessions as this process knows them. ``on_released`` runs
    after each release Redis took (the next in line was let in); ``in_flight``: the
    sessions with a request on its way to the app now."""

    def __init__(self, engine: Engine, room: str, on_released: Callable[[], None],
                 in_flight: Callable[[], Iterable[str]] = tuple) -> None:
        self.engine = engine
        self.room = room
        self._on_released = on_released
        self._in_flight = in_flight
        # Sessions Redis said were alive, until when this process takes that as still so.
        self._alive_until: dict[str, float] = {}
        self._used: set[str] = set()  # used since Redis last kept them alive
        self._begun: set[str] = set()  # admitted here, no second request told to Redis
        self._held: set[str] = set()  # first request just answered: held at the next tick
        self._unreleased: set[str] = set()  # ended by the origin, not yet in Redis

    async def alive(self, session_id: str) -> bool:
        """Is the session alive? Asked of Redis (which keeps it alive) at most once a
        second per session and process; a session ended meanwhile elsewhere (released
        on another process, or expired) may so get at most a second more."""
        left = self._alive_until.get(session_id, 0.0) - time.monotonic()
        if left > 0:
            # Used again more than half a check ago, or for the first time since it
            # began (Redis ends a session of one request only sooner): kept alive in
            # Redis by the next tick (about one Redis touch a second per busy session).
            if ((left < SESSION_CHECK_SECONDS / 2 or session_id in self._begun)
                    and len(self._used) < _SESSIONS_REMEMBERED):
                self._used.add(session_id)
                self._begun.discard(session_id)
            return True
        self.forget(session_id)
        if not await self.engine.touch(self.room, session_id):
            return False
        self.remember(session_id)
        return True

    def used(self, session_id: str) -> None:
        """The session is in use (a page was asked for): Redis is told at the next tick,
        so an early end its last page asked for (a leave, a reload) is undone."""
        if len(self._used) < _SESSIONS_REMEMBERED:
            self._used.add(session_id)

    def remember(self, session_id: str, *, begun: bool = False) -> None:
        """Redis just said the session is alive (or, ``begun``, admitted it on its
        first request: its next is told to Redis at once)."""
        if len(self._alive_until) >= _SESSIONS_REMEMBERED:
            self._alive_until.clear()  # they are asked of Redis again, nothing is lost
            self._begun.clear()
        self._alive_until[session_id] = time.monotonic() + SESSION_CHECK_SECONDS
        if begun:
            self._begun.add(session_id)

    def forget(self, session_id: str) -> None:
        """Ask Redis about the session next time it is used."""
        self._alive_until.pop(session_id, None)
        self._used.discard(session_id)
        self._begun.discard(session_id)

    async def release(self, session_id: str) -> None:
        """End the session (the origin said so). If Redis cannot take it now, it is
        sent again every tick until it can (releases are idempotent): the visitor is
        not failed."""
        self.forget(session_id)
        try:
            await self.engine.release(self.room, session_id)
            self._on_released()
        except RedisError as exc:
            logger.warning("could not release session %s yet: %s", session_id, exc)
            if len(self._unreleased) < _UNRELEASED_KEPT:
                self._unreleased.add(session_id)

    async def release_again(self) -> None:
        """Send the releases Redis missed (it was down or out of reach)."""
        while self._unreleased:
            session_id = next(iter(self._unreleased))
            await self.engine.release(self.room, session_id)
            self._unreleased.discard(session_id)
            self._on_released()

    async def keep_used_alive(self) -> None:
        """Keep alive in Redis the sessions used since it last heard of them (a request
        answered from this process's memory still counts as use), and hold those whose
        first request is on its way or just answered (its first idle counts from its
        answer: a slow first page does not end its session)."""
        used, self._used = self._used, set()
        held = (self._held | set(self._in_flight())) - used
        self._held = set()
        try:
            alive = await asyncio.gather(*(self.engine.touch(self.room, s) for s in used))
            alive += await self.engine.hold(self.room, sorted(held))
        except RedisError:
            self._used |= used  # sent again next tick
            raise
        for session_id, is_alive in zip([*used, *sorted(held)], alive, strict=True):
            if is_alive:
                self.remember(session_id)
            else:
                self._alive_until.pop(session_id, None)

    def answered(self, session_id: str) -> None:
        """The session's first request was answered: its first idle counts from now
        (Redis is told at the next tick)."""
        if len(self._held) < _SESSIONS_REMEMBERED:
            self._held.add(session_id)
