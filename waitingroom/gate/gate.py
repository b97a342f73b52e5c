"""One room's gate: each request for a path the room gates is let through to the
origin (admitted), answered with the queue page (waiting) or with the capture form
(the order system is down)."""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waitingroom.capture.desk import CaptureDesk
from waitingroom.door import cookies
from waitingroom.door.standing import (
    ChallengeRequired,
    Standing,
    TooManyNewPlaces,
    config_for,
    page_cookies,
    stand,
    status_of,
)
from waitingroom.fields import parse_fields
from waitingroom.gate.routes import Handler, room_routes
from waitingroom.gate.sockets import gated_socket
from waitingroom.room.room import Room
from waitingroom.room.sales import SOLD_HEADER, STOCK_HEADER
from waitingroom.status import Status
from waitingroom.visitor.feature_pages import moved_page
from waitingroom.visitor.notify_signup import Notices
from waitingroom.visitor.pow import challenge
from waitingroom.web.answers import busy, too_many_new_places, unavailable
from waitingroom.web.asgi import (
    NO_STORE,
    RELEASE_HEADER,
    SESSION_HEADER,
    html_response,
    is_room_header,
    json_response,
    without_room_headers,
)
from waitingroom.web.histogram import LATENCIES
from waitingroom.web.page_script import PageScript, editable_encodings, is_navigation
from waitingroom.web.renderer import Pages, RoomLook
from waitingroom.web.request import Request, with_cookies

logger = logging.getLogger("waitingroom")


class RoomGate:
    """Gate one room's order flow: FCFS admission up to the room's live capacity.
    Also holds the room's own endpoints (:attr:`routes`)."""

    def __init__(self, app: ASGIApp, room: Room, pages: Pages) -> None:
        self.app = app
        self.room = room
        self.pages = pages
        """The visitor's pages, rendered."""
        settings = room.settings
        self.desk = CaptureDesk(settings=settings, room=room.name, engine=room.engine,
                                tickets=room.tickets, records=room.limits.records,
                                fields=parse_fields(settings.capture_fields), pages=pages)
        self.interest = CaptureDesk(settings=settings, room=room.name, engine=room.engine,
                                    tickets=room.tickets, records=room.limits.records,
                                    fields=parse_fields(settings.interest_fields), interest=True,
                                    pages=pages)
        """A form of contact details only, for those who want to hear if more stock
        comes in."""
        self.notices = Notices(room, pages)
        room.every_tick(self.desk.drain_spool)
        room.every_tick(self.interest.drain_spool)
        room.every_tick(self.notices.send_due)
        room.every_tick(self.notices.tell_restock)
        self.routes: dict[str, Handler] = room_routes(room, pages, self.desk,
                                                      self.interest, self.notices)
        """The room's own endpoints under ``/_wr/``, by path."""
        self.look = RoomLook(settings.grace_seconds, self.notices.notifier.enabled,
                             settings.session_idle_seconds, settings.session_max_seconds)
        self._room_attribute = f' data-room="{room.name}"'  # room names need no escaping

    async def __call__(self, request: Request, receive: Receive, send: Send) -> None:
        """Answer a request for a path this room gates."""
        room = self.room
        if request.scope["type"] == "websocket":
            await self._socket(request, receive, send)
            return
        try:
            config = await room.config()
            if config.mode == "open":
                await self.app(request.forwarded(), receive, without_room_headers(send))
                return
            standing = await stand(room, request, join=True)
            config = await config_for(room, standing, config)
        except RedisError as exc:
            logger.warning("redis unavailable while gating %s: %s", request.scope["path"], exc)
            await self.without_redis(request, receive, send)
            return
        except TooManyNewPlaces:
            await too_many_new_places(self.pages, request, room.limits.new_places, receive,
                                      send)
            return
        except ChallengeRequired:
            await challenge(room, self.pages, request, receive, send)
            return
        if not standing.arriving and room.capturing(config) and not (
                standing.admitted and await room.may_probe(config)):
            status = status_of(room, standing, config, request)
            response = scripts_answer(room, status) if request.wants_json else self.desk.form(
                standing.visitor_id, status, request, here=request.here())
            await with_cookies(response, page_cookies(standing, request))(
                request.scope, receive, send)
        elif standing.admitted:
            await self._forward(request, receive, send, standing)
        else:
            status = status_of(room, standing, config, request)
            headers = {**NO_STORE, "retry-after": str(status.poll_after_seconds)}
            if request.wants_json:
                response = scripts_answer(room, status)
            elif status.state == "arriving":
                response = html_response(self.pages.arriving(request.language()),
                                         headers={**NO_STORE, STATE_HEADER: "arriving"})
            elif status.state == "closed":
                response = html_response(self.pages.closed(status, request.language(),
                                                           request.here()))
            elif status.state == "sold_out" and status.position is None:
                response = html_response(self.pages.sold_out(status, request.language(),
                                                             request.here()))
            elif status.state == "full":
                response = html_response(self.pages.full(
                    status, request.language(), request.here(),
                    no_line=config.method == "reject"))
            elif status.state == "moved":
                response = html_response(moved_page(self.pages, request.language(),
                                                    request.here()))
            else:
                body = self.pages.queue(status, look=self.look, lang=request.language(),
                                           here=request.here())
                response = html_response(body, headers=headers)
            await with_cookies(response, page_cookies(standing, request))(
                request.scope, receive, send)

    async def _socket(self, request: Request, receive: Receive, send: Send) -> None:
        """A WebSocket handshake takes nothing: only a live session's socket is let
        through (anything else is closed before it is accepted: the visitor gets 403)."""
        room = self.room
        session_id = cookies.pass_of(room, request)
        try:
            config = await room.config()
            live = session_id is not None and await room.sessions.alive(session_id)
        except RedisError as exc:
            logger.warning("redis unavailable while gating %s: %s", request.scope["path"], exc)
            await self.without_redis(request, receive, send)
            return
        if config.mode == "open":
            await self.app(request.forwarded(), receive, without_room_headers(send))
        elif room.capturing(config):
            await send({"type": "websocket.close", "code": 1013})
        elif live and session_id is not None:
            scope = request.forwarded((SESSION_HEADER, session_id.encode()))
            await gated_socket(room, self.app, scope, receive, send, session_id)
        else:
            await send({"type": "websocket.close", "code": 1008})

    async def _forward(
        self, request: Request, receive: Receive, send: Send, standing: Standing
    ) -> None:
        """Pass an admitted request on, if the session has fewer than its limit in
        flight; end the session if the origin says so."""
        room, session_id = self.room, standing.visitor_id
        in_flight = room.limits.session_requests
        if not in_flight.take(session_id):
            await busy(request, 429, receive, send)
            return
        scope = request.forwarded((SESSION_HEADER, session_id.encode()))
        begun = standing.visit is not None  # this request starts the session
        if scope["method"] == "GET" and is_navigation(scope["headers"]):
            if not begun:  # the next page: an early end the last one asked for is undone
                room.sessions.used(session_id)
            scope, send = self._with_page_script(request, scope, send)
        started = time.monotonic()

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                LATENCIES.observe("origin", time.monotonic() - started)
                room.breaker.record(message["status"] < 500)
                room.adaptive.observe(started, message["status"] < 500)
                headers = []  # one pass: the origin's headers less its signals to us
                release = False
                sold = stock = None
                for name, value in message.get("headers", ()):
                    lower = name.lower()
                    if lower == RELEASE_HEADER:
                        release = value.strip() == b"1"
                    elif lower == SOLD_HEADER:
                        sold = value
                    elif lower == STOCK_HEADER:
                        stock = value
                    elif not is_room_header(name):  # nothing else posing as the room's
                        headers.append((name, value))
                if sold is not None or stock is not None:
                    await room.sales.heard(sold, stock, (await room.config()).stock)
                if release:
                    await room.sessions.release(session_id)
                    standing.set_cookies.append(request.cookie(cookies.pass_cookie(room), "", 0))
                headers += [(b"set-cookie", c) for c in standing.set_cookies]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            room.breaker.record(False)
            room.adaptive.observe(started, False)
            raise
        finally:
            in_flight.give(session_id)
            if begun:
                room.sessions.answered(session_id)

    def _with_page_script(self, request: Request, scope: Scope, send: Send
                          ) -> tuple[Scope, Send]:
        """For a page asked for (``leave_beacon``): the scope asking the app for a page
        the room can edit, and ``send`` adding ``leave.js`` to it; else as they were."""
        if not self.room.settings.leave_beacon:
            return scope, send
        script = PageScript(LEAVE_SCRIPT, self._room_attribute,
                            request.site(self.room.settings.public_url))
        extensions = {name: value for name, value in scope.get("extensions", {}).items()
                      if name not in _UNEDITED_SENDS}
        scope = {**scope, "headers": editable_encodings(scope["headers"]),
                 "extensions": extensions}

        async def edited(message: Message) -> None:
            await send(script.edit(message))

        return scope, edited

    async def without_redis(self, request: Request, receive: Receive, send: Send) -> None:
        """Gate without Redis, as ``redis_down`` says: nobody, pass holders, everybody."""
        policy = self.room.settings.redis_down
        session_id = cookies.pass_of(self.room, request)
        if policy == "passes" and session_id is not None:
            # Admitted within capacity when the pass was issued; its session may have
            # ended since, so this can exceed the cap by those whose sessions ended.
            await self.app(request.forwarded((SESSION_HEADER, session_id.encode())),
                           receive, without_room_headers(send))
        elif policy == "open":
            await self.app(request.forwarded(), receive, without_room_headers(send))
        else:
            await unavailable(self.pages, request, receive, send)

    async def aclose(self) -> None:
        """Stop the room's background work (the engine is the caller's to close)."""
        await self.notices.aclose()
        await self.room.aclose()


_UNEDITED_SENDS = frozenset({"http.response.pathsend", "http.response.zerocopy"})
"""Ways an app may send a body the room never sees (a file by path): offered to an app
whose page the room edits, they would leave its length wrong."""
LEAVE_SCRIPT = "/_wr/static/leave.js"
"""The beacon added to the shop's pages (``leave_beacon``): a closed tab says so."""
STATE_HEADER = "x-waitingroom-state"
"""Marks the room's own answer to a gated call (``client.js`` tells it from the shop's)."""


def scripts_answer(room: Room, status: Status) -> Response:
    """A script's gated call while its caller may not pass (fetch/XHR, or JSON asked
    for): the status JSON it can act on, with ``api_wait_status``, never a page."""
    return json_response(status.to_json(), room.settings.api_wait_status, headers={
        **NO_STORE, "retry-after": str(status.poll_after_seconds), STATE_HEADER: status.state})
