"""One room as this process serves it: its live config (at most a second old), its
line, sessions, admission rate and breaker, the cookies that name a visitor's place,
and the background work done every half second."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from waitingroom.engine import BreakerPolicy, Engine, RoomChange, RoomConfig
from waitingroom.engine.line import LineView, LineWatch
from waitingroom.room.adaptive import AdaptiveCapacity
from waitingroom.room.breaker import BreakerClient
from waitingroom.room.eta import WAIT_BUCKETS, AdmissionRate
from waitingroom.room.redis_watch import RedisWatch
from waitingroom.room.sales import Sales
from waitingroom.room.sessions import Sessions
from waitingroom.room.ticker import Ticker
from waitingroom.settings import Settings
from waitingroom.tickets import Tickets
from waitingroom.web.histogram import Histogram
from waitingroom.web.limits import ProcessLimits

logger = logging.getLogger("waitingroom")

_CONFIG_TTL_SECONDS = 1.0
_CLOCK_SLACK_MS = 5000
"""How far this host's clock may be off Redis's when looking for due steps."""


class Room:
    """One room in this process. ``capacity``, ``message`` and ``capture`` seed the
    room's live config the first time any process sees the room; after that Redis
    holds it. ``planned``: the config file's timeline (epoch ms, changes), planned
    unless done already."""

    def __init__(
        self, name: str, *, settings: Settings, engine: Engine, tickets: Tickets,
        limits: ProcessLimits, capacity: int, message: str = "", capture: str = "auto",
        planned: tuple[tuple[int, dict[str, Any]], ...] = (),
    ) -> None:
        self.name = name
        self.settings = settings
        self.engine = engine
        self.tickets = tickets
        self.limits = limits
        self.rate = AdmissionRate()
        self.wait_times = Histogram(WAIT_BUCKETS)
        """Join-to-admission waits of visitors this process let in (seconds)."""
        self.doorbell = engine.announcements.doorbell(name)
        self.line = LineWatch(engine.watch, name, on_look=self._looked)
        self.sessions = Sessions(engine, name, on_released=self.line.stale,
                                 in_flight=limits.session_requests.keys)
        self.sales = Sales(engine, name, on_change=self.refresh_config)
        self.adaptive = AdaptiveCapacity(engine, name, settings.adaptive_interval_seconds)
        self.breaker = BreakerClient(
            engine, name,
            BreakerPolicy(settings.breaker_window_seconds, settings.breaker_failure_ratio,
                          settings.breaker_min_requests, settings.breaker_cooldown_seconds,
                          settings.breaker_probes),
            health_check_url=settings.health_check_url, ca_file=settings.origin_ca_file)
        self.redis_watch = RedisWatch(engine)
        """Does Redis answer this process (pages, dashboard, readiness, metrics)?"""
        self._seed = (capacity, message, capture)
        self._planned = planned
        self._config: RoomConfig | None = None
        self._config_expires = 0.0
        self._config_refresh: asyncio.Task[None] | None = None
        self.ticker = Ticker(name, [
            self.breaker.tick, self.sessions.release_again, self.sessions.keep_used_alive,
            self._read_sales, self._apply_due_steps, self._adapt])

    def every_tick(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` every half second after the room's own (a Redis error in it is
        logged, and it runs again next tick)."""
        self.ticker.add(job)

    # -- the live config ---------------------------------------------------------------

    async def config(self) -> RoomConfig:
        """The room's live config, at most a second old; refreshed in the background.
        The first call seeds a room Redis does not know yet and starts its ticker."""
        if self._config is None:
            capacity, message, capture = self._seed
            await self.engine.rooms.seed(self.name, capacity=capacity, message=message,
                                         capture=capture)
            await self.engine.timeline.plan_once(self.name, self._planned)
            self.ticker.start()
            self.redis_watch.start()
            self._config = await self.engine.rooms.config(self.name)
            self._config_expires = time.monotonic() + _CONFIG_TTL_SECONDS
        elif time.monotonic() > self._config_expires and self._config_refresh is None:
            self._config_refresh = asyncio.create_task(self.refresh_config())
        return self._config

    async def refresh_config(self) -> None:
        """Read the room's live config now (after an admin change, or when stale)."""
        try:
            self._config = await self.engine.rooms.config(self.name)
            self._config_expires = time.monotonic() + _CONFIG_TTL_SECONDS
        except RedisError:
            logger.warning("could not refresh room config; keeping the last one")
        finally:
            self._config_refresh = None

    def capturing(self, config: RoomConfig) -> bool:
        """Is the order flow replaced by the capture form right now?"""
        return config.capture == "on" or (config.capture == "auto"
                                          and self.breaker.state != "closed")

    async def may_probe(self, config: RoomConfig) -> bool:
        """May this admitted request go through as one of the half-open breaker's probes?"""
        return (config.capture == "auto" and self.breaker.state == "half"
                and await self.breaker.take_probe())

    # -- background work ---------------------------------------------------------------

    async def _apply_due_steps(self) -> None:
        """Apply the room's planned changes that are due (each taken by one process).
        Asked of Redis only from shortly before the next is due, as the config says."""
        config = self._config
        if config is None or config.next_step_ms is None or (
                time.time() * 1000 < config.next_step_ms - _CLOCK_SLACK_MS):
            return
        steps = await self.engine.timeline.due(self.name)
        for step in steps:
            try:
                await self.engine.rooms.change(self.name, f"timeline:{step.who}",
                                               f"timeline {step.id}",
                                               RoomChange.parse(step.changes))
            except ValueError as exc:  # checked when planned; never retried if it fails
                logger.error("room %s: timeline step %s not applied: %s", self.name,
                             step.id, exc)
            await self.engine.timeline.done(self.name, step)
        if steps:
            await self.refresh_config()

    async def _adapt(self) -> None:
        if self._config is not None:
            await self.adaptive.tick(self._config)

    async def _read_sales(self) -> None:
        if self._config is not None:
            await self.sales.read(self._config)

    def _looked(self, view: LineView) -> None:
        """Every look at the line: the admission rate, and streams whose place the
        head has passed are woken (an announcement missed is so made up for)."""
        self.rate.observe_line(view)
        self.doorbell.passed(view.head)

    async def aclose(self) -> None:
        """Stop the room's background work (the engine is the caller's to close)."""
        if self._config_refresh is not None:
            await self._config_refresh
        await self.ticker.aclose()  # its jobs may start the line's looks: stopped first
        await self.redis_watch.aclose()
        await self.line.aclose()
