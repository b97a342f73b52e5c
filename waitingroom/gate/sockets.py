"""An admitted session's WebSockets: passed on (to the shop, or through the proxy to
the origin) up to the session's limit; a frame either way is use of the session and
keeps it alive; the connection is closed (1008) within seconds of the session's end
(released by the origin, idle, or over). While Redis cannot be asked, the room's
``redis_down`` decides, as for requests: ``closed`` closes the socket (1013, try again
later); ``passes`` and ``open`` keep it open, unchecked, until Redis answers again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waitingroom.room.room import Room

CHECK_SECONDS = 2.0
"""How often an open socket's session is checked (a frame checks it too)."""
_LET_FINISH_SECONDS = 5.0
"""How long the app has to finish once told the visitor left (then it is cancelled)."""
SESSION_ENDED = {"type": "websocket.close", "code": 1008, "reason": "session ended"}
REDIS_DOWN = {"type": "websocket.close", "code": 1013, "reason": "try again later"}


async def gated_socket(room: Room, app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                       session_id: str) -> None:
    """Pass ``session_id``'s socket on to ``app`` for as long as the session lasts."""
    sockets = room.limits.session_sockets
    if not sockets.take(session_id):
        await send({"type": "websocket.close", "code": 1008, "reason": "too many sockets"})
        return
    ended = asyncio.Event()
    told = False  # the visitor was sent a close: nothing more goes to them
    closing = SESSION_ENDED

    async def still_on(ask: Callable[[], Awaitable[bool]]) -> None:
        nonlocal closing
        try:
            if await ask():
                return
        except RedisError:
            if room.settings.redis_down != "closed":
                return  # cannot be checked: kept, as a pass is for requests
            closing = REDIS_DOWN
        ended.set()

    async def use() -> None:
        await still_on(lambda: room.sessions.alive(session_id))

    async def gated_receive() -> Message:
        if ended.is_set():
            return {"type": "websocket.disconnect", "code": closing["code"]}
        receiving = asyncio.ensure_future(receive())
        stopping = asyncio.ensure_future(ended.wait())
        await asyncio.wait((receiving, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receiving.done():
            receiving.cancel()
            return {"type": "websocket.disconnect", "code": closing["code"]}
        message = receiving.result()
        if message["type"] == "websocket.receive":
            await use()
        return message

    async def gated_send(message: Message) -> None:
        nonlocal told
        if told:
            return
        if message["type"] == "websocket.send":
            await use()
        told = message["type"] == "websocket.close"
        await send(message)

    async def watch() -> None:
        while not ended.is_set():
            await asyncio.sleep(CHECK_SECONDS)
            await still_on(lambda: room.engine.session_on(room.name, session_id))

    watcher = asyncio.ensure_future(watch())
    passed = asyncio.ensure_future(app(scope, gated_receive, gated_send))
    stopping = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait((passed, stopping), return_when=asyncio.FIRST_COMPLETED)
        if not passed.done():  # the session ended first: close, let the app wind down
            if not told:
                told = True
                await send(closing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(passed), _LET_FINISH_SECONDS)
        await passed
    finally:
        for task in (watcher, stopping, passed):
            task.cancel()
        await asyncio.gather(watcher, stopping, return_exceptions=True)
        sockets.give(session_id)
