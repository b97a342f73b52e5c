"""The dashboard's live stream (``GET /_wr/admin/events``): the history, then the
room's figures every two seconds, and while Redis does not answer an ``outage`` event
every second instead, so the page never shows frozen figures as live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from waitingroom.room.room import Room

EVERY_SECONDS = 2.0
"""A sample of the room's figures this often."""
MAX_SECONDS = 600
"""A stream ends after this; the dashboard reconnects."""
OUTAGE_NOTICE_SECONDS = 1.0
"""A sample Redis has not answered in this long is reported as an outage (and again
every this long while it lasts)."""


async def dashboard_events(room: Room, history: list[dict[str, Any]],
                           sample: Callable[[Room], Awaitable[dict[str, Any]]]
                           ) -> AsyncIterator[bytes]:
    """The stream's events: ``history``, then ``sample(room)`` as ``data`` events, or
    ``outage`` events (``redis_unheard_since_ms``) while Redis is silent or the sample
    fails."""
    yield f"event: history\ndata: {json.dumps(history)}\n\n".encode()
    deadline = time.monotonic() + MAX_SECONDS
    while time.monotonic() < deadline:
        asked_at = time.time()
        if room.redis_watch.silent_since() is not None:  # known silent: said at once
            yield _outage(room, asked_at)
            await _until_redis_changes(room, OUTAGE_NOTICE_SECONDS)
            continue
        sampling = asyncio.ensure_future(sample(room))
        try:
            while not (await asyncio.wait({sampling}, timeout=OUTAGE_NOTICE_SECONDS))[0]:
                yield _outage(room, asked_at)  # a Redis that hangs
            figures = sampling.result()
        except RedisError:
            yield _outage(room, asked_at)
            await asyncio.sleep(OUTAGE_NOTICE_SECONDS)
            continue
        finally:
            sampling.cancel()  # if the dashboard left while it ran
        yield f"data: {json.dumps(figures)}\n\n".encode()
        await _until_redis_changes(room, EVERY_SECONDS)  # sooner if Redis falls silent


async def _until_redis_changes(room: Room, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(room.redis_watch.changed.wait(), seconds)


def _outage(room: Room, asked_at: float) -> bytes:
    """An ``outage`` event: Redis unheard since the room's last answered report, or
    since the sample was asked for (milliseconds since the epoch)."""
    silent = room.redis_watch.silent_since()
    since = int(1000 * min(asked_at, silent if silent is not None else asked_at))
    return f"event: outage\ndata: {json.dumps({'redis_unheard_since_ms': since})}\n\n".encode()
