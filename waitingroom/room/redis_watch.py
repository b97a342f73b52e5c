"""Does Redis answer this process? A room's own watch, apart from everything else the
room does with Redis: one PING every half second, timed. Redis is silent once a PING
has waited :data:`SILENT_AFTER_SECONDS` for its answer, or at once when one fails; it
answers again with the next PING answered. A slow Redis (a PING in tens of ms) or a
slow origin is never taken for a silent one. Pages, the dashboard, readiness and the
metrics all read it here: one story."""

from __future__ import annotations

import asyncio
import contextlib
import time

from redis.exceptions import RedisError

from waitingroom.engine import Engine

SILENT_AFTER_SECONDS = 1.5
"""A PING unanswered this long means Redis is silent (three PING intervals)."""
PING_EVERY_SECONDS = 0.5
_LOOK_EVERY_SECONDS = 0.25


class RedisWatch:
    """Whether Redis answers, and since when it has not; :attr:`changed` is set (and
    replaced) whenever that flips."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.heard_at = time.time()
        """When Redis last answered a PING (wall clock, seconds)."""
        self.changed = asyncio.Event()
        """Set, and replaced by a fresh one, when Redis falls silent or answers again."""
        self._asked_at: float | None = None  # monotonic, while a PING waits
        self._failing_since: float | None = None  # wall clock, while PINGs fail
        self._silent = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (idempotent; needs a running loop)."""
        if self._task is None:
            self.heard_at = time.time()
            self._task = asyncio.create_task(self._run())

    def silent_since(self) -> float | None:
        """Since when Redis has not answered (wall clock, seconds); None while it does,
        and before the watch started."""
        if self._task is None:
            return None
        if self._failing_since is not None:
            return self._failing_since
        asked = self._asked_at
        if asked is not None and time.monotonic() - asked > SILENT_AFTER_SECONDS:
            return self.heard_at
        return None

    def state(self) -> str:
        """In words: ``answers``, ``unreachable since <UTC time>``, or ``not reached
        yet`` (the room has not reached Redis since this process started)."""
        if self._task is None:
            return "not reached yet"
        silent = self.silent_since()
        return "answers" if silent is None else "unreachable since " + time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(silent))

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._asked_at = time.monotonic()
            ping = asyncio.ensure_future(self.engine.ping())
            try:
                while not (await asyncio.wait({ping}, timeout=_LOOK_EVERY_SECONDS))[0]:
                    self._tell()  # silent once it has waited long enough
                    if self._stop.is_set():
                        return
                ping.result()
                self.heard_at, self._failing_since = time.time(), None
            except RedisError:
                if self._failing_since is None:
                    self._failing_since = self.heard_at
            finally:
                ping.cancel()  # given up, and waited for: its connection goes back to the
                await asyncio.wait({ping})  # pool before the pool is closed, not after
                self._asked_at = None
            self._tell()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), PING_EVERY_SECONDS)

    def _tell(self) -> None:
        if (self.silent_since() is not None) != self._silent:
            self._silent = not self._silent
            changed, self.changed = self.changed, asyncio.Event()
            changed.set()

    async def aclose(self) -> None:
        """Stop watching (at once: a PING in flight is given up)."""
        task, self._task = self._task, None
        if task is not None:
            self._stop.set()
            await asyncio.wait({task})
