"""Pure ASGI middleware that puts a waiting room in front of any ASGI app.

Per request it decides one of: pass through (open paths, the reserved ``/_wr/``
paths answered here), admitted (a live session pass: forward with
``X-WaitingRoom-Session``), or waiting (the queue page, or JSON for API clients).
It costs one Redis round trip per gated request and none per open path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waitingroom import pages
from waitingroom._asgi import (
    NO_STORE,
    ClientGone,
    json_response,
    same_origin_path,
    wait_for_disconnect,
)
from waitingroom._breaker import BreakerClient
from waitingroom._capture_desk import CaptureDesk
from waitingroom._eta import AdmissionRate, WaitTimes
from waitingroom._logging import (
    REQUEST_ID_HEADER,
    echo_request_id,
    request_id,
    request_id_from,
)
from waitingroom._paths import RESERVED_PREFIX, PathRules
from waitingroom.admin import ADMIN_PREFIX, AdminAPI
from waitingroom.capture import parse_fields
from waitingroom.engine import BreakerPolicy, Engine, RoomConfig, Visit, VisitState
from waitingroom.settings import Settings
from waitingroom.status import State, Status, poll_interval
from waitingroom.tickets import Tickets, new_visitor_id

logger = logging.getLogger("waitingroom")

SESSION_HEADER = b"x-waitingroom-session"
_ADMIN_PATHS = ADMIN_PREFIX + "/"
RELEASE_HEADER = b"x-waitingroom-release"
_CONFIG_TTL_SECONDS = 1.0
_EVENTS_MAX_SECONDS = 300  # an SSE stream ends after this; EventSource reconnects


@dataclass(slots=True)
class _Request:
    """The parts of a request the waiting room reads, parsed once."""

    scope: Scope
    cookies: dict[str, str]
    wants_json: bool
    secure: bool
    incoming_id: bytes | None = None
    """The caller's X-Request-Id header, if any."""
    request_id: str = ""
    """This request's id (the caller's if sane); empty for the room's own endpoints."""

    @classmethod
    def parse(cls, scope: Scope, incoming_id: bytes | None = None, rid: str = "") -> _Request:
        cookie = accept = ""
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
        wants_json = "application/json" in accept and "text/html" not in accept
        return cls(scope, cookie_parser(cookie) if cookie else {}, wants_json,
                   scope.get("scheme") in ("https", "wss"), incoming_id, rid)

    def forwarded(self, *extra: tuple[bytes, bytes]) -> Scope:
        """The scope for the origin: it carries the request id and ``extra`` headers,
        copied once and only when something is really forwarded."""
        return _forwarded(self.scope, self.incoming_id, self.request_id, *extra)


@dataclass(slots=True)
class _Standing:
    """A visitor's standing after one engine call, and the cookies to set for it."""

    visitor_id: str
    admitted: bool
    visit: Visit | None = None
    set_cookies: list[bytes] = field(default_factory=list)


class WaitingRoomMiddleware:
    """Gate an ASGI app's order flow behind a first-come-first-served waiting room.

    ``settings`` must hold at least one secret. ``engine`` defaults to one built
    from ``settings.redis_url``; pass one to share a Redis connection pool.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, engine: Engine | None = None) -> None:
        settings.require("secret")
        self.app = app
        self.settings = settings
        self.room = settings.room
        self.engine = engine if engine is not None else Engine.from_settings(settings)
        self.tickets = Tickets(settings.secret, ticket_max_age=settings.ticket_max_age_seconds,
                               pass_max_age=settings.session_max_seconds)
        self.rules = PathRules(settings.gated_paths, settings.open_paths)
        self.rate = AdmissionRate()
        self.wait_times = WaitTimes()
        self._ticket_cookie = f"wr_ticket_{self.room}"
        self._pass_cookie = f"wr_pass_{self.room}"
        self._config: RoomConfig | None = None
        self._config_expires = 0.0
        self._config_refresh: asyncio.Task[None] | None = None
        self.desk = CaptureDesk(settings=settings, engine=self.engine, tickets=self.tickets,
                                fields=parse_fields(settings.capture_fields))
        self.breaker = BreakerClient(
            self.engine, self.room,
            BreakerPolicy(settings.breaker_window_seconds, settings.breaker_failure_ratio,
                          settings.breaker_min_requests, settings.breaker_cooldown_seconds,
                          settings.breaker_probes),
            on_tick=self._tick, health_check_url=settings.health_check_url)
        self.admin = AdminAPI(engine=self.engine, room=self.room, tokens=settings.admin_token,
                              admission_rate=self.rate.per_second,
                              after_change=self._refresh_config,
                              issue_invite=lambda i: self.tickets.issue_invite(self.room, i),
                              wait_times=self.wait_times)
        self._reserved: dict[str, Callable[[_Request, Receive, Send], Awaitable[None]]] = {
            "/_wr/status-page": self._status_page,
            "/_wr/status-page.json": self._status_page,
            "/_wr/status": self._status,
            "/_wr/events": self._events,
            "/_wr/health": self._health,
            "/_wr/capture": self._capture,
            "/_wr/invite": self._invite,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing_on_shutdown(receive), send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = forged_session = None
        for name, value in scope["headers"]:  # one pass over the headers
            if name == REQUEST_ID_HEADER:
                incoming = value
            elif name == SESSION_HEADER:
                forged_session = value
        if forged_session is not None:  # only we may say who is admitted
            scope = {**scope, "headers": [h for h in scope["headers"] if h[0] != SESSION_HEADER]}
        path: str = scope["path"]
        if path.startswith(RESERVED_PREFIX):
            # The waiting room's own answers (the status poll above all: the hottest
            # path) carry an id only when the caller sent one; nothing is forwarded.
            if incoming is not None and scope["type"] == "http":
                rid = request_id_from(incoming)
                request_id.set(rid)
                send = echo_request_id(send, rid, ours=True)
            await self._reserved_path(scope, receive, send)
            return
        rid = request_id_from(incoming)
        request_id.set(rid)
        if scope["type"] == "http":
            send = echo_request_id(send, rid, ours=False)
        if not self.rules.is_gated(path):
            await self.app(_forwarded(scope, incoming, rid), receive, send)
        else:
            await self._gated(_Request.parse(scope, incoming, rid), receive, send)

    # -- the gate ------------------------------------------------------------------

    async def _gated(self, request: _Request, receive: Receive, send: Send) -> None:
        try:
            config = await self._room_config()
            if config.mode == "open":
                await self.app(request.forwarded(), receive, send)
                return
            standing = await self._stand(request, join=True)
        except RedisError as exc:
            logger.warning("redis unavailable while gating %s: %s", request.scope["path"], exc)
            await self._unavailable(request, receive, send)
            return
        if self._capturing(config) and not (standing.admitted and await self._probe(config)):
            if request.scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013})
                return
            response = self.desk.form(standing.visitor_id, self._status_of(standing, config),
                                      wants_json=request.wants_json)
            await _with_cookies(response, standing.set_cookies)(request.scope, receive, send)
        elif standing.admitted:
            await self._forward(request, receive, send, standing)
        elif request.scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            status = self._status_of(standing, config)
            headers = {**NO_STORE, "retry-after": str(status.poll_after_seconds)}
            if request.wants_json:
                response = json_response(status.to_json(), headers=headers)
            elif status.state == "closed":
                response = Response(pages.closed_page(status), headers=NO_STORE,
                                    media_type="text/html")
            else:
                body = pages.queue_page(status, grace_seconds=self.settings.grace_seconds)
                response = Response(body, headers=headers, media_type="text/html")
            await _with_cookies(response, standing.set_cookies)(request.scope, receive, send)

    async def _stand(self, request: _Request, *, join: bool) -> _Standing:
        """Work out where the visitor stands: one Redis round trip."""
        session_id = self.tickets.read_pass(request.cookies.get(self._pass_cookie), self.room)
        if session_id is not None:
            if await self.engine.touch(self.room, session_id):
                return _Standing(session_id, admitted=True)
            # The session ended (idle, maximum, released): back of the line, same id.
            standing = await self._visit(request, session_id, join=join, fresh=True)
            if not standing.admitted:  # else a new pass already replaces the old one
                standing.set_cookies.append(self._cookie(request, self._pass_cookie, "", 0))
            return standing
        ticket = request.cookies.get(self._ticket_cookie)
        visitor_id = self.tickets.read_ticket(ticket, self.room)
        if visitor_id is not None:
            standing = await self._visit(request, visitor_id, join=join, fresh=False)
            joined = self.tickets.ticket_issued_at(ticket)
            if standing.admitted and joined is not None:
                self.wait_times.observe(max(0.0, time.time() - joined))
            return standing
        # No ticket, or a forged, expired or foreign one: a fresh place at the back.
        return await self._visit(request, new_visitor_id(), join=join, fresh=True)

    async def _visit(
        self, request: _Request, visitor_id: str, *, join: bool, fresh: bool
    ) -> _Standing:
        visit = await self.engine.visit(self.room, visitor_id, join=join)
        self.rate.observe(visit.server_ms, visit.admitted_total)
        standing = _Standing(visitor_id, visit.state is VisitState.ADMITTED, visit)
        if standing.admitted:
            standing.set_cookies += [self._pass_for(request, visitor_id),
                                     self._cookie(request, self._ticket_cookie, "", 0)]
        elif fresh and visit.state is VisitState.WAITING:
            standing.set_cookies.append(self._ticket_for(request, visitor_id))
        return standing

    async def _forward(
        self, request: _Request, receive: Receive, send: Send, standing: _Standing
    ) -> None:
        """Pass an admitted request on; end the session if the origin says so."""
        scope = request.forwarded((SESSION_HEADER, standing.visitor_id.encode()))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.breaker.record(message["status"] < 500)
                headers = MutableHeaders(scope=message)
                if headers.get("x-waitingroom-release") is not None:
                    release = headers["x-waitingroom-release"] == "1"
                    del headers["x-waitingroom-release"]
                    if release:
                        await self._release(standing.visitor_id)
                        standing.set_cookies.append(
                            self._cookie(request, self._pass_cookie, "", 0))
                headers.raw.extend((b"set-cookie", c) for c in standing.set_cookies)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self.breaker.record(False)
            raise

    async def _release(self, session_id: str) -> None:
        try:
            await self.engine.release(self.room, session_id)
        except RedisError as exc:
            # The session still ends by its idle timeout; the visitor is not failed.
            logger.warning("could not release session %s: %s", session_id, exc)

    # -- reserved paths ------------------------------------------------------------

    async def _reserved_path(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        if path.startswith("/_wr/static/") and path[12:] in pages.ASSETS:
            body, content_type = pages.ASSETS[path[12:]]
            response = Response(body, headers={"cache-control": "public, max-age=3600"})
            response.raw_headers.append((b"content-type", content_type))
            await response(scope, receive, send)
            return
        handler = self._reserved.get(path)
        if handler is None and (path.startswith(_ADMIN_PATHS) or path == "/_wr/metrics"):
            handler = self._admin
        if handler is None:
            await json_response({"error": "not found"}, 404)(scope, receive, send)
            return
        request = _Request.parse(scope)
        try:
            await handler(request, receive, send)
        except RedisError as exc:  # every handler answers only after its Redis work
            logger.warning("redis unavailable for %s: %s", path, exc)
            await self._unavailable(request, receive, send)
        except ClientGone:
            pass  # nobody left to answer

    async def _admin(self, request: _Request, receive: Receive, send: Send) -> None:
        await self._room_config()  # a room no visitor has touched yet is seeded
        await self.admin(request.scope, receive, send)

    async def _status(self, request: _Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/status``: the caller's standing as JSON (joins if holding none)."""
        config = await self._room_config()
        if config.mode == "open":  # nobody waits: asking takes no place
            status, cookies = Status(self.room, "open", message=config.message or None), []
        else:
            standing = await self._stand(request, join=True)
            status, cookies = self._status_of(standing, config), standing.set_cookies
        response = json_response(status.to_json())
        await _with_cookies(response, cookies)(request.scope, receive, send)

    async def _events(self, request: _Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/events``: the caller's status as Server-Sent Events until admitted."""
        config = await self._room_config()
        standing = await self._stand(request, join=True)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store"),
                   (b"x-accel-buffering", b"no"),
                   *((b"set-cookie", c) for c in standing.set_cookies)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        disconnected = asyncio.ensure_future(wait_for_disconnect(receive))
        deadline = time.monotonic() + _EVENTS_MAX_SECONDS
        last = b""
        try:
            while True:
                status = self._status_of(standing, config)
                payload = status.to_json()
                if payload != last:
                    await send({"type": "http.response.body", "body": b"data: " + payload +
                                b"\n\n", "more_body": True})
                    last = payload
                else:
                    await send({"type": "http.response.body", "body": b":\n\n",
                                "more_body": True})
                if status.state in ("admitted", "open", "capture", "closed") or (
                        time.monotonic() > deadline):
                    break
                done, _ = await asyncio.wait({disconnected}, timeout=status.poll_after_seconds)
                if done:
                    return
                try:
                    config = await self._room_config()
                    standing = await self._visit(request, standing.visitor_id, join=True,
                                                 fresh=False)
                except RedisError:
                    logger.warning("redis unavailable during /_wr/events; retrying")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            disconnected.cancel()

    async def _capture(self, request: _Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/capture``: the form; ``POST``: a submission (form or JSON)."""
        method = request.scope["method"]
        config = await self._room_config()
        if method == "POST":
            status = Status(self.room, "capture", message=config.message or None)
            response = await self.desk.submit(self._cookie_visitor(request), status,
                                              dict(request.scope["headers"]), receive,
                                              wants_json=request.wants_json)
        elif method in ("GET", "HEAD"):
            standing = await self._stand(request, join=True)
            response = _with_cookies(
                self.desk.form(standing.visitor_id, self._status_of(standing, config),
                               wants_json=request.wants_json), standing.set_cookies)
        else:
            response = Response(b"", 405, headers={"allow": "GET, HEAD, POST"})
        await response(request.scope, receive, send)

    async def _status_page(self, request: _Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/status-page`` (HTML, works without JavaScript) and its JSON twin:
        the room's state in words and the operator's message. Cacheable for 5 s."""
        config = await self._room_config()
        if config.mode in ("open", "closed"):
            state = config.mode
        elif self._capturing(config):
            state = "capture"
        elif config.start_at_ms > time.time() * 1000:
            state = "scheduled"
        else:
            state = "paused" if config.paused else "queueing"
        headers = {"cache-control": "public, max-age=5"}
        if request.scope["path"].endswith(".json"):
            body = {"room": self.room, "state": state, "state_text": pages.STATE_WORDS[state],
                    "message": config.message or None,
                    "message_at_ms": config.message_at_ms or None}
            response = json_response(body, headers=headers)
        else:
            response = Response(pages.status_page(state, config.message, config.message_at_ms),
                                headers=headers, media_type="text/html")
        await response(request.scope, receive, send)

    async def _invite(self, request: _Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/invite?t=TOKEN&to=/path``: an invite link (staff, VIPs). The holder
        goes to the priority lane, served before the queue and never over capacity."""
        query = dict(parse_qsl(request.scope["query_string"].decode("latin-1")))
        invite_id = self.tickets.read_invite(query.get("t"), self.room)
        target = query.get("to", "/")
        if not same_origin_path(target):
            target = "/"  # never an open redirect
        visitor_id = self._cookie_visitor(request) or new_visitor_id()
        await self._room_config()
        visit = (await self.engine.redeem_invite(self.room, invite_id, visitor_id)
                 if invite_id else None)
        if visit is None:
            await Response(pages.invite_refused_page(), 403, headers=NO_STORE,
                           media_type="text/html")(request.scope, receive, send)
            return
        response = Response(b"", 303, headers={**NO_STORE, "location": target})
        cookie = (self._pass_for(request, visitor_id) if visit.state is VisitState.ADMITTED
                  else self._ticket_for(request, visitor_id))
        await _with_cookies(response, [cookie])(request.scope, receive, send)

    async def _health(self, request: _Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/health``: is Redis reachable? Takes no place in line."""
        try:
            healthy = await self.engine.ping()
        except RedisError:
            healthy = False
        body = {"status": "ok" if healthy else "unavailable", "room": self.room}
        await json_response(body, 200 if healthy else 503)(request.scope, receive, send)

    # -- helpers -------------------------------------------------------------------

    def _status_of(self, standing: _Standing, config: RoomConfig) -> Status:
        message = config.message or None
        if config.mode == "open":
            return Status(self.room, "open", message=message)
        capturing = self._capturing(config)
        if standing.admitted or standing.visit is None:
            return Status(self.room, "capture" if capturing else "admitted", message=message)
        if standing.visit.state is VisitState.NO_PLACE:  # a closed room took no new place
            return Status(self.room, "closed", message=message)
        if standing.visit.state is VisitState.PREQUEUE:  # before the scheduled start
            wait = max(0, config.start_at_ms - standing.visit.server_ms) // 1000
            return Status(self.room, "capture" if capturing else "prequeue",
                          eta_seconds=wait, message=message,
                          poll_after_seconds=poll_interval(0, self.settings.grace_seconds))
        position = standing.visit.position
        state: State = "capture" if capturing else "paused" if config.paused else "queued"
        return Status(
            self.room, state, position=position,
            eta_seconds=None if config.paused else self.rate.eta_seconds(position),
            message=message,
            poll_after_seconds=poll_interval(position, self.settings.grace_seconds),
        )

    async def _tick(self) -> None:
        """Background work every half second: drain the capture spool, sample history."""
        await self.desk.drain_spool()
        if self.admin.enabled:
            try:
                await self.admin.record_history()
            except RedisError as exc:
                logger.warning("could not sample the room for the dashboard: %s", exc)

    def _capturing(self, config: RoomConfig) -> bool:
        """Is the order flow replaced by the capture form right now?"""
        return config.capture == "on" or (config.capture == "auto"
                                          and self.breaker.state != "closed")

    async def _probe(self, config: RoomConfig) -> bool:
        """May this admitted request go through as one of the half-open breaker's probes?"""
        return (config.capture == "auto" and self.breaker.state == "half"
                and await self.breaker.take_probe())

    async def _room_config(self) -> RoomConfig:
        """The room's live config, at most a second old; refreshed in the background."""
        if self._config is None:
            await self.engine.seed_room(self.room, capacity=self.settings.capacity,
                                        message=self.settings.message,
                                        capture=self.settings.capture)
            self.breaker.start()
            self._config = await self.engine.room_config(self.room)
            self._config_expires = time.monotonic() + _CONFIG_TTL_SECONDS
        elif time.monotonic() > self._config_expires and self._config_refresh is None:
            self._config_refresh = asyncio.create_task(self._refresh_config())
        return self._config

    async def _refresh_config(self) -> None:
        try:
            self._config = await self.engine.room_config(self.room)
            self._config_expires = time.monotonic() + _CONFIG_TTL_SECONDS
        except RedisError:
            logger.warning("could not refresh room config; keeping the last one")
        finally:
            self._config_refresh = None

    def _cookie_visitor(self, request: _Request) -> str | None:
        """The visitor a genuine pass or ticket cookie names, if any."""
        return (self.tickets.read_pass(request.cookies.get(self._pass_cookie), self.room)
                or self.tickets.read_ticket(request.cookies.get(self._ticket_cookie),
                                            self.room))

    def _pass_for(self, request: _Request, visitor_id: str) -> bytes:
        return self._cookie(request, self._pass_cookie,
                            self.tickets.issue_pass(self.room, visitor_id),
                            self.settings.session_max_seconds)

    def _ticket_for(self, request: _Request, visitor_id: str) -> bytes:
        return self._cookie(request, self._ticket_cookie,
                            self.tickets.issue_ticket(self.room, visitor_id),
                            self.settings.ticket_max_age_seconds)

    def _cookie(self, request: _Request, name: str, value: str, max_age: int) -> bytes:
        secure = "; Secure" if request.secure else ""
        return (f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
                f"{secure}").encode()

    async def _unavailable(self, request: _Request, receive: Receive, send: Send) -> None:
        if request.scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later
            return
        headers = {**NO_STORE, "retry-after": "5"}
        if request.wants_json or request.scope["path"].startswith(RESERVED_PREFIX):
            response = json_response({"error": "temporarily unavailable"}, 503, headers)
        else:
            response = Response(pages.unavailable_page(), 503, headers=headers,
                                media_type="text/html")
        await response(request.scope, receive, send)

    async def aclose(self) -> None:
        """Stop background work and close the Redis pool (done at lifespan shutdown)."""
        await self.breaker.aclose()
        await self.engine.aclose()

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped


def _with_cookies(response: Response, cookies: list[bytes]) -> Response:
    response.raw_headers.extend((b"set-cookie", c) for c in cookies)
    return response


def _forwarded(
    scope: Scope, incoming_id: bytes | None, rid: str, *extra: tuple[bytes, bytes]
) -> Scope:
    """A copy of ``scope`` carrying the request id and ``extra`` headers (``scope``
    itself when there is nothing to add)."""
    encoded = rid.encode()
    if incoming_id == encoded and not extra:
        return scope
    headers = scope["headers"]
    if incoming_id is not None:
        headers = [h for h in headers if h[0] != REQUEST_ID_HEADER]
    return {**scope, "headers": [*headers, (REQUEST_ID_HEADER, encoded), *extra]}
