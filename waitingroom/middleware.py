"""Pure ASGI middleware that puts a waiting room in front of any ASGI app.

Per request it first puts the path in its canonical form (:mod:`waitingroom.web.paths`:
the form routed on is the form passed on; a path with none gets a 400), then decides
one of: pass through (open paths, and paths no room gates), the reserved ``/_wr/``
paths answered here, or the gate of the room the path belongs to
(:mod:`waitingroom.gate.gate`): admitted, waiting or capture. Gated requests are answered
from each process's copy of the line and session checks made at most once a second,
so most cost no Redis round trip; open paths never do.

Rooms: the configured one (``settings.room``, gating ``settings.gated_paths``) plus
any ops create at run time (``POST /_wr/admin/rooms``), each with its own paths,
capacity and rate. The room's own endpoints (``/_wr/status`` and the rest) take a
``room`` query parameter; without one they answer for the configured room.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from functools import partial
from typing import Any

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from waitingroom.door.standing import ChallengeRequired, TooManyNewPlaces
from waitingroom.engine import Engine, RoomChange, RoomDefinition
from waitingroom.errors import ConfigError
from waitingroom.gate.directory import RoomDirectory
from waitingroom.gate.gate import RoomGate
from waitingroom.ops.admin import ADMIN_PREFIX, AdminAPI
from waitingroom.room.room import Room
from waitingroom.settings import Settings
from waitingroom.tickets import Tickets
from waitingroom.visitor.pow import challenge
from waitingroom.web.answers import too_many_new_places, unavailable
from waitingroom.web.asgi import (
    BadRequest,
    ClientGone,
    is_room_header,
    json_response,
    query_params,
    without_room_headers,
)
from waitingroom.web.histogram import LATENCIES
from waitingroom.web.lifespan import around_lifespan
from waitingroom.web.limits import ProcessLimits
from waitingroom.web.paths import (
    RESERVED_PREFIX,
    BadPath,
    Router,
    canonical_scope,
    route_path,
)
from waitingroom.web.renderer import ASSETS, Pages
from waitingroom.web.request import Request, forwarded
from waitingroom.web.request_id import (
    REQUEST_ID_HEADER,
    echo_request_id,
    request_id,
    request_id_from,
)
from waitingroom.web.templates import BRAND_PREFIX, Brand

logger = logging.getLogger("waitingroom")
SHUTDOWN_SECONDS = 20.0
"""The longest the rooms' background work may take to stop at shutdown (notices being
sent, the last reports), below the 30 s an orchestrator usually waits before SIGKILL;
then the Redis pool is closed anyway and the work still running is logged."""

_ADMIN_PATHS = ADMIN_PREFIX + "/"


class WaitingRoomMiddleware:
    """Gate an ASGI app's order flow behind first-come-first-served waiting rooms.

    ``settings`` must hold at least one secret. ``engine`` defaults to one built
    from ``settings.redis_url``; pass one to share a Redis connection pool.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings, engine: Engine | None = None) -> None:
        settings.require("secret")
        self.app = app
        self.settings = settings
        self.pages = Pages(templates_dir=settings.templates_dir,
                           locales_dir=settings.locales_dir,
                           brand=Brand(settings.shop_name, settings.stylesheet, settings.logo))
        """The visitor pages, in every language, in the shop's look."""
        self.engine = engine if engine is not None else Engine.from_settings(settings)
        self.tickets = Tickets(settings.secret, ticket_max_age=settings.ticket_max_age_seconds,
                               pass_max_age=settings.session_max_seconds)
        self.limits = ProcessLimits.from_settings(settings)
        self.rooms = RoomDirectory(
            default=self._gate(settings.room, capacity=settings.capacity,
                               message=settings.message, capture=settings.capture,
                               planned=_planned(settings)),
            default_paths=settings.gated_paths,
            router=Router(settings.room, settings.gated_paths, settings.open_paths,
                          fold_case=settings.case_insensitive_paths),
            engine=self.engine, make_gate=self._created_gate)
        self.admin = AdminAPI(engine=self.engine, rooms=self.rooms, tokens=settings.admin_token,
                              issue_invite=self.tickets.issue_invite,
                              metrics_tokens=settings.metrics_token)

    def _gate(self, name: str, *, capacity: int, message: str = "", capture: str = "auto",
              planned: tuple[tuple[int, dict[str, Any]], ...] = ()) -> RoomGate:
        room = Room(name, settings=self.settings, engine=self.engine, tickets=self.tickets,
                    limits=self.limits, capacity=capacity, message=message, capture=capture,
                    planned=planned)
        room.every_tick(partial(self._sample_for_dashboard, room))
        return RoomGate(self.app, room, self.pages)

    def _created_gate(self, room: RoomDefinition) -> RoomGate:
        return self._gate(room.name, capacity=room.capacity)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await around_lifespan(self.app, scope, receive, send, startup=self._start,
                                  shutdown=self.aclose)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:  # route on the canonical path, and pass on just that
            scope = canonical_scope(scope)
        except BadPath:
            await _bad_path(scope, receive, send)
            return
        incoming, forged = None, False
        for name, value in scope["headers"]:  # one pass over the headers
            if name == REQUEST_ID_HEADER:
                incoming = value
            elif is_room_header(name):
                forged = True
        if forged:  # only we may say who is admitted, or speak for the room at all
            scope = {**scope, "headers": [h for h in scope["headers"]
                                          if not is_room_header(h[0])]}
        path = route_path(scope)  # what the app will route, under a mount or a root path
        if path.startswith(RESERVED_PREFIX):
            # The waiting room's own answers (the status poll above all: the hottest
            # path) carry an id only when the caller sent one; nothing is forwarded.
            if incoming is not None and scope["type"] == "http":
                rid = request_id_from(incoming)
                request_id.set(rid)
                send = echo_request_id(send, rid, ours=True)
            await self._reserved_path(scope, path, receive, send)
            return
        rid = request_id_from(incoming)
        request_id.set(rid)
        if scope["type"] == "http":
            send = echo_request_id(send, rid, ours=False)
        try:
            gate = await self.rooms.for_path(path)
        except RedisError as exc:  # only before the room registry was first read
            logger.warning("redis unavailable while routing %s: %s", path, exc)
            request = Request.parse(scope, self.pages.languages, incoming, rid)
            await self.rooms.default.without_redis(request, receive, send)
            return
        if gate is None:
            await self.app(forwarded(scope, incoming, rid), receive, without_room_headers(send))
        else:
            started = time.perf_counter()
            await gate(Request.parse(scope, self.pages.languages, incoming, rid), receive, send)
            LATENCIES.observe("gated", time.perf_counter() - started)

    async def _reserved_path(self, scope: Scope, path: str, receive: Receive,
                             send: Send) -> None:
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})
            return
        asset = (ASSETS.get(path[12:]) if path.startswith("/_wr/static/") else
                 self.pages.brand_files.get(path[len(BRAND_PREFIX):])
                 if path.startswith(BRAND_PREFIX) else None)
        if asset is not None:
            await _static(asset)(scope, receive, send)
            return
        request = Request.parse(scope, self.pages.languages)
        try:
            if path == "/_wr/health":
                await self._health(request, receive, send)
            elif path == "/_wr/live":  # liveness: this process answers, whatever Redis does
                await json_response({"status": "ok"})(scope, receive, send)
            elif path == "/_wr/ready":
                await self._ready(request, receive, send)
            elif path.startswith(_ADMIN_PATHS) or path == "/_wr/metrics":
                await self.admin(scope, receive, send)
            elif path in self.rooms.default.routes:
                gate = await self._room_asked_for(scope)
                if gate is None:
                    await json_response({"error": "no such room"}, 404)(scope, receive, send)
                elif path == "/_wr/status":
                    started = time.perf_counter()
                    await gate.routes[path](request, receive, send)
                    LATENCIES.observe("poll", time.perf_counter() - started)
                else:
                    await gate.routes[path](request, receive, send)
            else:
                await json_response({"error": "not found"}, 404)(scope, receive, send)
        except RedisError as exc:  # every handler answers only after its Redis work
            logger.warning("redis unavailable for %s: %s", path, exc)
            await unavailable(self.pages, request, receive, send)
        except TooManyNewPlaces:
            await too_many_new_places(self.pages, request, self.limits.new_places, receive,
                                      send)
        except ChallengeRequired as needed:
            await challenge(needed.room, self.pages, request, receive, send)
        except BadRequest as bad:
            await json_response({"error": str(bad)}, 400)(scope, receive, send)
        except ClientGone:
            pass  # nobody left to answer

    async def _room_asked_for(self, scope: Scope) -> RoomGate | None:
        """The room named by the ``room`` query parameter (the configured one if none)."""
        name = query_params(scope).get("room")
        return self.rooms.default if name is None else await self.rooms.named(name)

    async def _health(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/health``: is Redis reachable? Takes no place in line."""
        try:
            healthy = await self.engine.ping()
        except RedisError:
            healthy = False
        body = {"status": "ok" if healthy else "unavailable", "room": self.settings.room}
        await json_response(body, 200 if healthy else 503)(request.scope, receive, send)

    async def _ready(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/ready``: may a load balancer send visitors here? Yes while the
        process serves, whatever Redis does: with Redis gone every visitor gets the
        room's answer for it (``redis_down``), which is the room's to give, not the
        load balancer's error. Says what Redis does, from the room's reports (no Redis
        call: a hung Redis cannot make the probe time out). A stopping process stops
        listening first: its probe is refused."""
        redis = self.rooms.default.room.redis_watch.state()
        await json_response({"status": "ready", "room": self.settings.room, "redis": redis})(
            request.scope, receive, send)

    async def _sample_for_dashboard(self, room: Room) -> None:
        if self.admin.enabled:
            await self.admin.record_history(room)

    async def aclose(self) -> None:
        """Stop background work and close the Redis pool (done at lifespan shutdown),
        in :data:`SHUTDOWN_SECONDS` at most, whatever hangs."""
        closing = asyncio.ensure_future(self.rooms.aclose())
        done, _ = await asyncio.wait({closing}, timeout=SHUTDOWN_SECONDS)
        if not done:
            running = [task.get_coro() for task in asyncio.all_tasks()
                       if task not in (closing, asyncio.current_task())]
            logger.error("background work still running after %g s at shutdown, left: %s",
                         SHUTDOWN_SECONDS, running[:20])
            closing.cancel()
            await asyncio.wait({closing}, timeout=1.0)
        elif not closing.cancelled() and closing.exception() is not None:
            logger.error("stopping the rooms' background work failed",
                         exc_info=closing.exception())
        await self.engine.aclose()

    async def _start(self) -> None:
        """At start-up: check the Redis server and seed the room (or say why not)."""
        try:
            if await self.engine.check_server():  # seeded, its timeline planned
                await self.rooms.default.room.config()
        except ConfigError as exc:  # the room's scripts would fail on every call
            logger.error("waitingroom cannot run on this Redis: %s", exc)
        except RedisError as exc:  # seeded by the first visitor instead
            logger.warning("room %s not seeded at start-up: %s", self.settings.room, exc)


async def _bad_path(scope: Scope, receive: Receive, send: Send) -> None:
    """A path with no canonical form is answered here, never routed or passed on."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
    else:
        await Response(b"Bad request path.\n", 400, media_type="text/plain")(
            scope, receive, send)


def _static(asset: tuple[bytes, bytes]) -> Response:
    """A static file (ours or the shop's brand files): cacheable for an hour, and never
    run as a page of this site (an SVG's scripts included)."""
    body, content_type = asset
    response = Response(body, headers={"cache-control": "public, max-age=3600",
                                       "x-content-type-options": "nosniff",
                                       "content-security-policy": "sandbox"})
    response.raw_headers.append((b"content-type", content_type))
    return response


def _planned(settings: Settings) -> tuple[tuple[int, dict[str, Any]], ...]:
    """The config file's timeline, each step's changes checked as the admin API checks
    them; ConfigError naming ``timeline`` and the step otherwise."""
    steps = []
    for number, (at_ms, text) in enumerate(settings.timeline, 1):
        try:
            steps.append((at_ms, RoomChange.parse(json.loads(text)).as_json()))
        except ValueError as exc:
            raise ConfigError("timeline", f"step {number}: {exc}") from None
    return tuple(steps)
