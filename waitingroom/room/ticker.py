"""A room's heartbeat in this process: every half second, each of its jobs in turn (the
breaker's report first, then sessions, stock, the timeline, adaptive capacity, spools,
notices, the dashboard's samples). A job waiting on Redis is logged once a minute; a
job's own fault is logged and never stops the others or the next tick."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from waitingroom.web.limits import RateLimit

logger = logging.getLogger("waitingroom")
TICK_SECONDS = 0.5

Job = Callable[[], Awaitable[None]]


class Ticker:
    """Runs ``jobs`` every :data:`TICK_SECONDS` once started, until closed."""

    def __init__(self, room: str, jobs: list[Job]) -> None:
        self.room = room
        self._jobs = jobs
        self._told_waiting = RateLimit(1)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, job: Job) -> None:
        """Run ``job`` on every tick too, after the others."""
        self._jobs.append(job)

    def start(self) -> None:
        """Start ticking in the background (idempotent; needs a running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    @property
    def running(self) -> bool:
        """Started, and neither stopped nor ended by a fault."""
        return self._task is not None and not self._task.done()

    async def tick(self) -> None:
        """Each job once, in order."""
        for job in self._jobs:
            try:
                await job()
            except RedisError as exc:  # said once a minute per job, not twice a second
                if self._told_waiting.allow(named(job)):
                    logger.warning("room %s: %s waits for Redis: %s", self.room, named(job),
                                   exc)
            except Exception:  # one job's fault must not stop the others
                logger.exception("room %s: %s failed", self.room, named(job))

    async def _run(self) -> None:
        # Stopped by an event, not by cancellation: a cancel can be swallowed on the way
        # (client libraries, task groups), and the loop would then never end.
        while not self._stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_SECONDS)

    async def aclose(self) -> None:
        """Stop ticking (after at most the tick in flight)."""
        task, self._task = self._task, None
        if task is not None:
            self._stop.set()
            await asyncio.wait({task})


def named(job: Job) -> str:
    """A job's name for the log: its function's, through any ``partial``."""
    while isinstance(job, functools.partial):
        job = job.func
    return str(getattr(job, "__qualname__", type(job).__name__))
