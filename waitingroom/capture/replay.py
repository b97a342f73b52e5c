"""``waitingroom replay``: post captured orders into the recovered backend.

Records go in stream order with ``Idempotency-Key: <reference>``; each is
acknowledged only after a 2xx, so a replay killed at any point resumes with the
records it had not acknowledged, and a backend that honours the key applies each
exactly once. A record refused ``max_tries`` times is parked in the dead-letter
stream so one bad record cannot stop the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TextIO

import aiohttp

from waitingroom.engine import CapturedRecord, Engine

logger = logging.getLogger("waitingroom.replay")
_BATCH = 100
_MAX_BACKOFF_SECONDS = 60.0


@dataclass(slots=True)
class ReplayProgress:
    """What a replay run did."""

    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, backlog: int) -> str:
        """One progress line: counts, rate and ETA for the backlog."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.delivered / elapsed
        eta = f"{backlog / rate:.0f}s" if rate and backlog else "-"
        return (f"replayed {self.delivered}, dead-lettered {self.dead_lettered}, "
                f"retries {self.retries}, {rate:.1f}/s, backlog {backlog}, eta {eta}")


class Replayer:
    """Delivers a room's captures to ``url``."""

    def __init__(
        self, engine: Engine, room: str, url: str, *, consumer: str = "replayer",
        max_tries: int = 5, backoff_seconds: float = 1.0, timeout_seconds: float = 10.0,
        progress_every_seconds: float = 2.0, out: TextIO | None = None,
    ) -> None:
        self.engine = engine
        self.room = room
        self.url = url
        self.consumer = consumer
        self.max_tries = max_tries
        self.backoff_seconds = backoff_seconds
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.progress_every_seconds = progress_every_seconds
        self.out = out
        self.progress = ReplayProgress()

    async def run(self, *, follow: bool = False) -> ReplayProgress:
        """Deliver everything outstanding; with ``follow``, keep waiting for more."""
        last_report = 0.0
        pending = True  # first whatever this consumer was handed before a crash
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            while True:
                batch = await self.engine.captures.read(self.room, self.consumer,
                                                        count=_BATCH, pending=pending)
                if not batch:
                    if pending:
                        pending = False
                        continue
                    if not follow:
                        break
                    await asyncio.sleep(1.0)
                    continue
                for record in batch:
                    await self._deliver(session, record)
                    if time.monotonic() - last_report >= self.progress_every_seconds:
                        last_report = time.monotonic()
                        await self._report()
        await self._report()
        return self.progress

    async def _deliver(self, session: aiohttp.ClientSession, record: CapturedRecord) -> None:
        payload = {"reference": record.reference, "place": record.place,
                   "submitted_at_ms": record.submitted_at_ms, "fields": record.fields}
        problem = ""
        for attempt in range(1, self.max_tries + 1):
            try:
                async with session.post(self.url, json=payload,
                                        headers={"Idempotency-Key": record.reference}) as r:
                    if 200 <= r.status < 300:
                        await self.engine.captures.ack(self.room, record.entry_id)
                        self.progress.delivered += 1
                        return
                    problem = f"HTTP {r.status}: {(await r.text())[:200]}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_tries:
                self.progress.retries += 1
                await asyncio.sleep(min(self.backoff_seconds * 2 ** (attempt - 1),
                                        _MAX_BACKOFF_SECONDS))
        logger.warning("parking %s after %d tries: %s", record.reference, self.max_tries,
                       problem)
        await self.engine.captures.dead_letter(self.room, record, problem)
        self.progress.dead_lettered += 1

    async def _report(self) -> None:
        if self.out is not None:
            backlog = await self.engine.captures.backlog(self.room)
            print(self.progress.line(backlog), file=self.out, flush=True)
