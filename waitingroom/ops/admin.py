"""The ops admin API under ``/_wr/admin/`` (bearer token), and Prometheus metrics.

Room endpoints act on the room named by the ``room`` query parameter (the configured
room if none is given):

- ``GET /_wr/admin/room``: the room's live config, numbers and breaker state.
- ``POST /_wr/admin/room``: change any of ``capacity``, ``rate`` (admissions per
  minute, 0 = no limit), ``start_at_ms`` (scheduled start with a pre-queue; 0 clears),
  ``paused``, ``mode`` (``normal``/``open``/``closed``),
  ``message``, ``capture`` (``auto``/``on``/``off``) with a JSON object. Every
  process applies it within a second; each change is audited.
- ``GET /_wr/admin/audit``: who changed what, when, before and after (newest first).
- ``GET /_wr/admin/timeline``: the room's planned changes; ``POST`` one (``at_ms`` or
  ``in_seconds``, and ``changes`` as for the room): it is applied once, by one
  process, when due, and audited; ``DELETE /_wr/admin/timeline/ID`` cancels one.
- ``POST /_wr/admin/invites``: a signed invite link (staff, VIPs) with a use limit and
  an expiry: ``{"uses": 5, "expires_in_seconds": 3600, "to": "/checkout"}``.
- ``GET /_wr/admin/dashboard``: the live dashboard page (it asks for the token);
  ``GET /_wr/admin/events``: its data, as Server-Sent Events (bearer token).

Rooms:

- ``GET /_wr/admin/rooms``: every room with its paths and numbers.
- ``POST /_wr/admin/rooms``: create a room gating its own paths, with its own capacity
  and rate: ``{"name": "consoles", "paths": ["/consoles/*"], "capacity": 50}``.
- ``DELETE /_wr/admin/rooms/NAME``: revoke a created room; its paths fall back to the
  configured room's rules. Captures and the audit log are kept.

And ``GET /_wr/metrics``: Prometheus text format for every room (same bearer token).

Tokens are compared as bytes in constant time; a missing, wrong or non-ASCII token
gets 401, and tokens are never logged.
"""


from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from redis.exceptions import RedisError
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from waitingroom.engine import Engine, RoomExists
from waitingroom.gate.directory import RoomDirectory
from waitingroom.ops.admin_bodies import (
    parse_changes,
    parse_invite,
    parse_room,
    parse_step,
    parsed_body,
)
from waitingroom.ops.admin_summary import wait_words
from waitingroom.ops.dashboard import dashboard_page
from waitingroom.ops.dashboard_events import dashboard_events
from waitingroom.ops.history import History
from waitingroom.ops.metrics import metrics
from waitingroom.room.room import Room
from waitingroom.web.asgi import html_response, json_response, query_params

ADMIN_PREFIX = "/_wr/admin"
ADMIN_OFF = ("the admin API is off: set WAITINGROOM_ADMIN_TOKEN (or admin_token in the "
             "config file) to turn it on")


class AdminAPI:
    """Serves the admin endpoints of every room in ``rooms``."""

    def __init__(
        self, *, engine: Engine, rooms: RoomDirectory, tokens: Sequence[str],
        issue_invite: Callable[[str, str], str], metrics_tokens: Sequence[str] = (),
    ) -> None:
        """``metrics_tokens`` may read ``/_wr/metrics`` only (so may ``tokens``)."""
        self.engine = engine
        self.rooms = rooms
        # "name:token" or a bare token; kept as bytes for the constant-time comparison.
        self._tokens = [(entry.rpartition(":")[0] or "admin",
                         entry.rpartition(":")[2].encode()) for entry in tokens]
        self._scrapers = [("metrics", token.encode()) for token in metrics_tokens]
        self._issue_invite = issue_invite
        self._histories: dict[str, History] = {}

    @property
    def enabled(self) -> bool:
        """False when no token is configured: the admin API then does not exist."""
        return bool(self._tokens)

    def authenticate(self, scope: Scope, *, scraping: bool = False) -> str | None:
        """The name of the caller's admin token (or, ``scraping``, a metrics token), or
        None (compared in constant time)."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, presented = header.partition(b" ")
        who = None
        for name, token in self._tokens + (self._scrapers if scraping else []):
            # Every token is compared: no early exit.
            if hmac.compare_digest(presented.strip(), token) and scheme.lower() == b"bearer":
                who = name
        return who

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/_wr/metrics" and (self._scrapers or self._tokens):
            if self.authenticate(scope, scraping=True) is None:
                response = json_response({"error": "unauthorized"}, 401)
            elif scope["method"] != "GET":
                response = json_response({"error": "method not allowed"}, 405)
            else:
                response = Response(await metrics(self.engine, await self._scraped_rooms()),
                                    media_type="text/plain; version=0.0.4")
        elif not self.enabled:
            response = json_response({"error": ADMIN_OFF}, 404)
        elif scope["path"] == ADMIN_PREFIX + "/dashboard" and scope["method"] == "GET":
            # The page itself holds no data; everything it shows needs the token.
            room = await self._asked_for(scope)
            response = (json_response({"error": "no such room"}, 404) if room is None else
                        html_response(dashboard_page(room.name)))
        elif (who := self.authenticate(scope)) is None:
            response = json_response({"error": "unauthorized"}, 401)
            response.headers["www-authenticate"] = 'Bearer realm="waitingroom"'
        else:
            response = await self._route(scope, receive, who)
        await response(scope, receive, send)

    async def _scraped_rooms(self) -> list[Room]:
        """Every room, or the configured one if the registry cannot be read soon (a
        process started while Redis is away): a scrape must answer in time."""
        try:
            async with asyncio.timeout(1.0):
                return [gate.room for gate in await self.rooms.all()]
        except (RedisError, TimeoutError):
            return [self._default]

    @property
    def _default(self) -> Room:
        return self.rooms.default.room

    async def _named(self, name: str) -> Room | None:
        gate = await self.rooms.named(name)
        return gate.room if gate else None

    async def _asked_for(self, scope: Scope) -> Room | None:
        """The room the ``room`` query parameter names (the configured one if none),
        with its config seeded."""
        name = query_params(scope).get("room")
        room = self._default if name is None else await self._named(name)
        if room is not None:
            await room.config()
        return room

    async def _route(self, scope: Scope, receive: Receive, who: str) -> Response:
        method, path = scope["method"], scope["path"]
        if path == ADMIN_PREFIX + "/rooms":
            if method == "GET":
                return json_response({"rooms": [await self.snapshot(gate.room)
                                                for gate in await self.rooms.all()]})
            if method == "POST":
                return await self._create_room(receive, who)
            return json_response({"error": "method not allowed"}, 405)
        if path.startswith(ADMIN_PREFIX + "/rooms/") and method == "DELETE":
            return await self._revoke_room(path.rpartition("/")[2], who)
        room = await self._asked_for(scope)
        if room is None:
            return json_response({"error": "no such room"}, 404)
        if path == ADMIN_PREFIX + "/room":
            if method == "GET":
                return json_response(await self.snapshot(room))
            if method == "POST":
                return await self._change(room, receive, who)
            return json_response({"error": "method not allowed"}, 405)
        if path == ADMIN_PREFIX + "/events" and method == "GET":
            return StreamingResponse(self._events(room), media_type="text/event-stream",
                                     headers={"cache-control": "no-store",
                                              "x-accel-buffering": "no"})
        if path == ADMIN_PREFIX + "/invites" and method == "POST":
            return await self._create_invite(room, receive, who)
        if path == ADMIN_PREFIX + "/timeline":
            if method == "GET":
                return await self._timeline(room)
            if method == "POST":
                return await self._plan(room, receive, who)
            return json_response({"error": "method not allowed"}, 405)
        if path.startswith(ADMIN_PREFIX + "/timeline/") and method == "DELETE":
            return await self._cancel(room, path.rpartition("/")[2], who)
        if path == ADMIN_PREFIX + "/audit" and method == "GET":
            return json_response({"entries": await self.engine.rooms.read_audit(room.name)})
        return json_response({"error": "not found"}, 404)

    async def sample(self, room: Room) -> dict[str, Any]:
        """One data point for the dashboard: the room's numbers now."""
        snapshot = await self.snapshot(room)
        config, counts = snapshot["config"], snapshot["counts"]
        return {"t": int(time.time() * 1000), "waiting": counts["waiting"],
                "active": counts["active"], "capacity": config["capacity"],
                "admitted": counts["admitted"], "abandoned": counts["abandoned"],
                "rate": snapshot["admission_rate_per_second"] or 0.0,
                "eta_last": None if snapshot["eta_last_seconds"] is None
                else wait_words(snapshot["eta_last_seconds"]),
                "breaker": snapshot["breaker"],
                "breaker_change": snapshot["breaker_change"],
                "captures": await self.engine.captures.count(room.name),
                "interest": await self.engine.captures.count(room.name, interest=True),
                "sold": snapshot["sales"]["sold"],
                "latency_ms": snapshot["origin"]["mean_latency_ms"],
                "errors": snapshot["origin"]["error_ratio"],
                "proven": snapshot["origin"]["proven_sessions"],
                "steps": [{"at_ms": step.at_ms, "changes": step.changes} for step in
                          (await self.engine.timeline.steps(room.name))[:5]],
                "config": config}

    def _history(self, room: Room) -> History:
        return self._histories.setdefault(room.name, History())

    async def record_history(self, room: Room) -> None:
        """Take a sample of ``room`` for the dashboard's charts when one is due."""
        history = self._history(room)
        if history.due():
            history.add(await self.sample(room))

    def _events(self, room: Room) -> AsyncIterator[bytes]:
        return dashboard_events(room, list(self._history(room).samples), self.sample)

    async def snapshot(self, room: Room) -> dict[str, Any]:
        """The room as ops see it (``config.message_shown``: do visitors see the message;
        ``eta_last_seconds``: the wait the last in line is told, None as on their page:
        nobody waits, sold out, paused, or the rate not known yet)."""
        config = await self.engine.rooms.config(room.name)
        counts = await self.engine.rooms.counts(room.name)
        return {"room": room.name, "paths": list(self.rooms.paths_of(room.name)),
                "config": {**asdict(config), "message_shown": config.message_stands},
                "counts": asdict(counts), "breaker": await self.engine.breaker.state(room.name),
                "breaker_change": await self.engine.breaker.last_change(room.name),
                "sales": asdict(await self.engine.stock.figures(room.name,
                                                                config.sales_per_session)),
                "origin": await _origin(self.engine, room),
                "admission_rate_per_second": room.rate.per_second(),
                "eta_last_seconds": room.rate.eta_seconds(counts.waiting)
                if counts.waiting and not (config.sold_out or config.paused) else None}

    async def _create_room(self, receive: Receive, who: str) -> Response:
        request = await parsed_body(receive, parse_room)
        if isinstance(request, Response):
            return request
        if request["name"] == self._default.name:
            return json_response({"error": "that is the configured room's name"}, 409)
        try:
            created = await self.engine.rooms.create(**request)
        except RoomExists:
            return json_response({"error": f"room {request['name']} already exists"}, 409)
        except ValueError as exc:  # too many rooms
            return json_response({"error": str(exc)}, 400)
        for audited in {created.name, self._default.name}:
            await self.engine.rooms.audit(audited, who, "create-room", {}, request)
        await self.rooms.reload()
        room = await self._named(created.name)
        if room is None:
            return json_response({"error": "the room was revoked meanwhile"}, 409)
        return json_response(await self.snapshot(room), 201)

    async def _revoke_room(self, name: str, who: str) -> Response:
        if name == self._default.name:
            return json_response({"error": "the configured room cannot be revoked"}, 400)
        if await self._named(name) is None or not await self.engine.rooms.revoke(name):
            return json_response({"error": "no such room"}, 404)
        before = {"name": name, "paths": list(self.rooms.paths_of(name))}
        for audited in (name, self._default.name):
            await self.engine.rooms.audit(audited, who, "revoke-room", before, {})
        await self.rooms.reload()
        self._histories.pop(name, None)
        return json_response({"revoked": name})

    async def _create_invite(self, room: Room, receive: Receive, who: str) -> Response:
        request = await parsed_body(receive, parse_invite)
        if isinstance(request, Response):
            return request
        invite_id = secrets.token_urlsafe(9)
        await self.engine.places.create_invite(room.name, invite_id, uses=request["uses"],
                                               expires_in_seconds=request["expires_in_seconds"])
        await self.engine.rooms.audit(room.name, who, "invite", {}, {"id": invite_id, **request})
        query = {"t": self._issue_invite(room.name, invite_id), "to": request["to"]}
        if room is not self._default:
            query["room"] = room.name
        url = f"/_wr/invite?{urlencode(query)}"
        return json_response({"id": invite_id, "url": url, **request}, 201)

    async def _timeline(self, room: Room) -> Response:
        steps = await self.engine.timeline.steps(room.name)
        return json_response({"steps": [asdict(step) for step in steps]})

    async def _plan(self, room: Room, receive: Receive, who: str) -> Response:
        request = await parsed_body(receive, parse_step)
        if isinstance(request, Response):
            return request
        try:
            step = await self.engine.timeline.add(
                room.name, request["changes"], who, at_ms=request.get("at_ms"),
                in_seconds=request.get("in_seconds", 0))
        except ValueError as exc:  # too many steps
            return json_response({"error": str(exc)}, 400)
        await self.engine.rooms.audit(room.name, who, "plan", {}, asdict(step))
        return json_response(asdict(step), 201)

    async def _cancel(self, room: Room, step_id: str, who: str) -> Response:
        step = await self.engine.timeline.cancel(room.name, step_id)
        if step is None:
            return json_response({"error": "no such step (applied already?)"}, 404)
        await self.engine.rooms.audit(room.name, who, "cancel", asdict(step), {})
        return json_response({"cancelled": asdict(step)})

    async def _change(self, room: Room, receive: Receive, who: str) -> Response:
        body = await parsed_body(receive, parse_changes)
        if isinstance(body, Response):
            return body
        await self.engine.rooms.change(room.name, who, "update", body["change"])
        await room.refresh_config()
        return json_response(await self.snapshot(room))


async def _origin(engine: Engine, room: Room) -> dict[str, Any]:
    """How the origin answered admitted shoppers in the last whole interval, and the
    most sessions it has served at once without trouble (0: not seen yet)."""
    seconds = room.adaptive.interval_seconds
    figures = await engine.origin.interval(room.name, int(time.time() // seconds) - 1)
    return {"interval_seconds": seconds, "requests": figures.requests,
            "mean_latency_ms": round(figures.mean_latency_ms, 1),
            "error_ratio": round(figures.error_ratio, 4),
            "proven_sessions": await engine.origin.proven(room.name)}
