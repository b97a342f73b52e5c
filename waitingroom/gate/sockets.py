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
    try:
        await _GatedSocket(room, session_id, receive, send).run(app, scope)
    finally:
        sockets.give(session_id)


class _GatedSocket:
    """One socket of an admitted session, between the visitor and the app: a frame
    either way is use of the session; the session's end closes it."""

    def __init__(self, room: Room, session_id: str, receive: Receive, send: Send) -> None:
        self.room, self.session_id = room, session_id
        self._receive, self._send = receive, send
        self.ended = asyncio.Event()
        self.told = False  # the visitor was sent a close: nothing more goes to them
        self.closing = SESSION_ENDED

    async def _still_on(self, ask: Callable[[], Awaitable[bool]]) -> None:
        try:
            if await ask():
                return
        except RedisError:
            if self.room.settings.redis_down != "closed":
                return  # cannot be checked: kept, as a pass is for requests
            self.closing = REDIS_DOWN
        self.ended.set()

    async def _use(self) -> None:
        await self._still_on(lambda: self.room.sessions.alive(self.session_id))

    async def receive(self) -> Message:
        """The visitor's next message, or a disconnect once the session has ended."""
        if self.ended.is_set():
            return {"type": "websocket.disconnect", "code": self.closing["code"]}
        receiving = asyncio.ensure_future(self._receive())
        stopping = asyncio.ensure_future(self.ended.wait())
        await asyncio.wait((receiving, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receiving.done():
            receiving.cancel()
            return {"type": "websocket.disconnect", "code": self.closing["code"]}
        message = receiving.result()
        if message["type"] == "websocket.receive":
            await self._use()
        return message

    async def send(self, message: Message) -> None:
        """The app's message to the visitor, unless the visitor was sent a close."""
        if self.told:
            return
        if message["type"] == "websocket.send":
            await self._use()
        self.told = message["type"] == "websocket.close"
        await self._send(message)

    async def _watch(self) -> None:
        while not self.ended.is_set():
            await asyncio.sleep(CHECK_SECONDS)
            await self._still_on(lambda: self.room.engine.session_on(self.room.name,
                                                                     self.session_id))

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        """Run ``app`` on the socket until it ends, or the session does (then the
        visitor is sent a close and the app has a few seconds to wind down)."""
        watcher = asyncio.ensure_future(self._watch())
        passed = asyncio.ensure_future(app(scope, self.receive, self.send))
        stopping = asyncio.ensure_future(self.ended.wait())
        try:
            await asyncio.wait((passed, stopping), return_when=asyncio.FIRST_COMPLETED)
            if not passed.done():  # the session ended first: close, let the app wind down
                if not self.told:
                    self.told = True
                    await self._send(self.closing)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(passed), _LET_FINISH_SECONDS)
            await passed
        finally:
            for task in (watcher, stopping, passed):
                task.cancel()
            await asyncio.gather(watcher, stopping, return_exceptions=True)
