"""A shopper's page going away and coming back (``/_wr/static/leave.js``): a closed
tab frees its session's slot in seconds, not after the idle time; a closed queue page
(``queue.js``) holds no slot for its waiter when the turn comes while it is gone."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Send

from waitingroom.door import cookies
from waitingroom.room.room import Room
from waitingroom.web.asgi import NO_STORE, json_response, query_params
from waitingroom.web.request import Request

LEAVE_LINGER_SECONDS = 10
"""After ``POST /_wr/leave`` (a shopper's page went away), a session ends this long
from now unless the shopper's next page says ``POST /_wr/here`` (or makes a request)."""
CLOSED_LINGER_SECONDS = 2
"""The same after ``POST /_wr/leave?closed=1``: the browser said the page went with
no navigation of its own (the tab was closed, or the address bar or the reload button
took it elsewhere); a next page of the shop's (a reload) undoes it with its request."""


async def leave(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``POST /_wr/leave`` (``navigator.sendBeacon`` on ``pagehide``): the shopper's
    page went away. The session ends :data:`LEAVE_LINGER_SECONDS` from now
    (:data:`CLOSED_LINGER_SECONDS` with ``closed=1``) unless the shopper goes on. From a
    waiter's closed queue page: its turn goes by without holding a slot until it asks
    again (its place is kept for the grace)."""
    await _beacon(room, request, receive, send, leaving=True)


async def here(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``POST /_wr/here`` (on ``pageshow``): the shopper's next page is showing, so
    the session goes on (an earlier leave is undone)."""
    await _beacon(room, request, receive, send, leaving=False)


async def _beacon(
    room: Room, request: Request, receive: Receive, send: Send, *, leaving: bool
) -> None:
    session_id = cookies.pass_of(room, request)
    closed = leaving and query_params(request.scope).get("closed") == "1"
    place = cookies.place_of(room, request) if session_id is None and closed else None
    if request.scope["method"] != "POST":
        answer = json_response({"error": "not found"}, 404)
    elif place is not None and place[1]:  # a waiter's page was closed
        await room.engine.hide(room.name, *place)
        answer = Response(b"", 204, headers=NO_STORE)
    elif session_id is None:
        answer = json_response({"error": "no session"}, 404)
    else:
        room.sessions.forget(session_id)
        if leaving:
            await room.engine.release(room.name, session_id, linger_seconds=(
                CLOSED_LINGER_SECONDS if closed else LEAVE_LINGER_SECONDS))
        else:
            await room.sessions.alive(session_id)
        answer = Response(b"", 204, headers=NO_STORE)
    await answer(request.scope, receive, send)
