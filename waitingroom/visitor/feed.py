"""A waiting visitor's live status: ``GET /_wr/status`` (JSON, polled) and
``GET /_wr/events`` (Server-Sent Events, told at once when admitted)."""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError
from starlette.types import Receive, Send

from waitingroom.door.standing import (
    Standing,
    config_for,
    stand,
    status_of,
    visitor_message,
    waiting,
)
from waitingroom.engine import RoomConfig
from waitingroom.room.room import Room
from waitingroom.room.told import told_value
from waitingroom.status import Status
from waitingroom.web.answers import busy
from waitingroom.web.asgi import query_params, send_json, wait_for_disconnect
from waitingroom.web.limits import RateLimit
from waitingroom.web.request import Request

logger = logging.getLogger("waitingroom")

EVENTS_MAX_SECONDS = 300
"""An event stream ends after this; the browser's EventSource reconnects."""
_FINAL_STATES = ("admitted", "open", "capture", "closed", "moved")
_OUTAGE_EVENT = b"event: outage\ndata: {}\n\n"
"""Told to the page while Redis does not answer: it says it is reconnecting."""
_OUTAGE_LOGGED = RateLimit(1)
"""An outage is logged once a minute per room, not once per open stream."""
_OUTAGE_RETRY_SECONDS = 1.0
"""While Redis does not answer, it is asked again this often (so the page hears of
its return within about a second)."""


async def status(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``GET /_wr/status``: the caller's standing as JSON (joins if holding none and
    back with the cookie of a first visit)."""
    config = await room.config()
    if config.mode == "open":  # nobody waits: asking takes no place
        answer, cookies = Status(room.name, "open",
                                 message=visitor_message(config, request)), []
    else:
        standing = await stand(room, request, join=True, claim=False)
        config = await config_for(room, standing, config)
        shown = query_params(request.scope).get("chance") if config.stock is not None else None
        answer, cookies = (status_of(room, standing, config, request, shown),
                           standing.set_cookies)
    await send_json(send, answer.to_json(), cookies)


async def events(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``GET /_wr/events``: the caller's status as Server-Sent Events until admitted
    (a 503 past the process's limit on live streams: the page polls instead)."""
    streams = room.limits.event_streams
    if not streams.take():
        await busy(request, 503, receive, send)
        return
    try:
        await _stream(room, request, receive, send)
    finally:
        streams.give()


async def _stream(room: Room, request: Request, receive: Receive, send: Send) -> None:
    config = await room.config()
    standing = await stand(room, request, join=True, claim=False)
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store"),
               (b"x-accel-buffering", b"no"),
               *((b"set-cookie", c) for c in standing.set_cookies)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if standing.arriving:  # no place until the cookie comes back: reconnect with it
        body = b"retry: 1000\ndata: " + status_of(room, standing, config, request).to_json()
        await send({"type": "http.response.body", "body": body + b"\n\n"})
        return
    number = standing.visit.number if standing.visit else 0
    disconnected = asyncio.ensure_future(wait_for_disconnect(receive))
    deadline = time.monotonic() + EVENTS_MAX_SECONDS
    last = b""
    answer: Status | None = None
    try:
        with room.doorbell.waiting(standing.visitor_id, number) as bell:
            while True:
                answer = status_of(room, standing, config, request,
                                   answer.chance.level if answer and answer.chance else None)
                payload = answer.to_json()
                body = _event(standing, answer, payload) if payload != last else b":\n\n"
                await send({"type": "http.response.body", "body": body, "more_body": True})
                last = payload
                if answer.state in _FINAL_STATES or time.monotonic() > deadline:
                    break
                # Asked again at the advised interval (which keeps the place), or at
                # once when the doorbell rings: the visitor was let in.
                # Or when Redis falls silent or answers again.
                rung = asyncio.ensure_future(bell.wait())
                redis = asyncio.ensure_future(room.redis_watch.changed.wait())
                done, _ = await asyncio.wait({disconnected, rung, redis},
                                             timeout=answer.poll_after_seconds,
                                             return_when=asyncio.FIRST_COMPLETED)
                rung.cancel()
                redis.cancel()
                if disconnected in done:
                    return
                bell.clear()
                asked = await _ask_again(room, request, standing, number, send, disconnected,
                                         deadline, told=bool(last))
                if asked is None:
                    return
                config, standing, outage = asked
                if outage:
                    last = b""  # the page was told of the outage: anew now Redis is back
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        disconnected.cancel()


async def _ask_again(room: Room, request: Request, standing: Standing, number: int,
                     send: Send, disconnected: asyncio.Future[None], deadline: float, *,
                     told: bool) -> tuple[RoomConfig, Standing, bool] | None:
    """The room's config and the waiter's standing asked anew, and whether Redis was
    away meanwhile: while it does not answer, the page is told of the outage and asked
    again every few seconds. None if the visitor went, or the stream's time ran out
    (then it has ended)."""
    outage = False
    while True:
        try:
            if room.redis_watch.silent_since() is not None:
                raise RedisError("Redis has not answered the room's reports")
            config = await room.config()
            return config, await waiting(room, request, standing.visitor_id, number,
                                         join=True, claim=False), outage
        except RedisError:
            if told and not outage and _OUTAGE_LOGGED.allow(room.name):  # not one per stream
                logger.warning("redis unavailable during /_wr/events; retrying")
            outage = True
            await send({"type": "http.response.body", "body": _OUTAGE_EVENT, "more_body": True})
            if (await asyncio.wait({disconnected}, timeout=_OUTAGE_RETRY_SECONDS))[0]:
                return None
            if time.monotonic() > deadline:  # ended as any stream is
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return None


def _event(standing: Standing, answer: Status, payload: bytes) -> bytes:
    """One event: the status, and as its id what the waiter was told (a browser sends it
    back when it reconnects, maybe to another process: see :meth:`Room.seen_of`)."""
    visit = standing.visit
    if visit is None or not visit.number or answer.position is None:
        return b"data: " + payload + b"\n\n"
    told = told_value(visit.number, visit.server_ms, answer.position).encode()
    return b"id: " + told + b"\ndata: " + payload + b"\n\n"
