"""A process's view of its room's shared circuit breaker.

Outcomes of order-flow requests are counted in memory and reported every half second
(the first job of the room's ticker) in one round trip, which also moves the shared
breaker on and returns its state; so one process seeing the origin fail switches every
process within the window plus half a second, and the order flow pays no extra round
trip per request.
While half-open it can probe a health-check URL itself, so it closes again even when
no admitted visitor happens to make a request.
"""

from __future__ import annotations

import logging
import ssl
import time

import aiohttp
from redis.exceptions import RedisError

from waitingroom.engine import BreakerPolicy, Engine
from waitingroom.tls import tls_context
from waitingroom.web.histogram import LATENCIES

logger = logging.getLogger("waitingroom.breaker")
REPORT_INTERVAL_SECONDS = 0.5
HEALTH_CHECK_TIMEOUT_SECONDS = 5.0


class BreakerClient:
    """Counts outcomes, reports them, and knows the breaker's last state."""

    def __init__(
        self,
        engine: Engine,
        room: str,
        policy: BreakerPolicy,
        *,
        health_check_url: str = "",
        ca_file: str = "",
    ) -> None:
        """``ca_file``: authorities trusted, beside the system's, for an https
        ``health_check_url``."""
        self.engine = engine
        self.room = room
        self.policy = policy
        self.state = "closed"
        self._health_check_url = health_check_url
        self._tls: ssl.SSLContext | bool = tls_context(ca_file) if ca_file else True
        self._successes = 0
        self._failures = 0
        self.outcomes = [0, 0]
        """Order-flow outcomes this process has seen: [errors, answers < 500]."""

    def record(self, ok: bool) -> None:
        """Count one order-flow outcome (a 5xx, timeout or connection error is not ok)."""
        if ok:
            self._successes += 1
        else:
            self._failures += 1
        self.outcomes[ok] += 1

    async def take_probe(self) -> bool:
        """While half-open: may this request go to the origin as a probe?"""
        try:
            return await self.engine.breaker.take_probe(self.room, self.policy)
        except RedisError:
            return False

    async def report(self) -> None:
        """Send the counted outcomes now and refresh the state."""
        successes, failures = self._successes, self._failures
        self._successes = self._failures = 0
        asked = time.perf_counter()
        try:
            result = await self.engine.breaker.report(self.room, successes, failures,
                                                      self.policy)
        except RedisError as exc:
            self._successes += successes
            self._failures += failures
            LATENCIES.observe("redis", time.perf_counter() - asked)  # failures take time too
            logger.warning("could not report to the breaker: %s", exc)
            return
        LATENCIES.observe("redis", time.perf_counter() - asked)
        if result.state != self.state:
            logger.warning("breaker of room %s is now %s", self.room, result.state)
        self.state = result.state

    async def tick(self) -> None:
        """Report; while half-open, probe the health check URL (if any) and report that."""
        await self.report()
        if self.state == "half" and self._health_check_url and await self.take_probe():
            self.record(await self._healthy())
            await self.report()

    async def _healthy(self) -> bool:
        timeout = aiohttp.ClientTimeout(total=HEALTH_CHECK_TIMEOUT_SECONDS)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, \
                    session.get(self._health_check_url, allow_redirects=False,
                                ssl=self._tls) as response:
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False
