"""A shopper's page going away and coming back (``/_wr/static/leave.js``): a closed
tab frees its session's slot in seconds, not after the idle time."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Send

from waitingroom.room.room import Room
from waitingroom.web.asgi import NO_STORE, json_response
from waitingroom.web.request import Request

LEAVE_LINGER_SECONDS = 10
"""After ``POST /_wr/leave`` (a shopper's page went away), a session ends this long
from now unless the shopper's next page says ``POST /_wr/here`` (or makes a request)."""


async def leave(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``POST /_wr/leave`` (``navigator.sendBeacon`` on ``pagehide``): the shopper's
    page went away. The session ends :data:`LEAVE_LINGER_SECONDS` from now unless the
    shopper goes on."""
    await _beacon(room, request, receive, send, leaving=True)


async def here(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``POST /_wr/here`` (on ``pageshow``): the shopper's next page is showing, so
    the session goes on (an earlier leave is undone)."""
    await _beacon(room, request, receive, send, leaving=False)


async def _beacon(
    room: Room, request: Request, receive: Receive, send: Send, *, leaving: bool
) -> None:
    session_id = room.pass_of(request)
    if request.scope["method"] != "POST":
        answer = json_response({"error": "not found"}, 404)
    elif session_id is None:
        answer = json_response({"error": "no session"}, 404)
    else:
        room.sessions.forget(session_id)
        if leaving:
            await room.engine.release(room.name, session_id,
                                      linger_seconds=LEAVE_LINGER_SECONDS)
        else:
            await room.sessions.alive(session_id)
        answer = Response(b"", 204, headers=NO_STORE)
    await answer(request.scope, receive, send)
