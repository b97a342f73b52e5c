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
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from waitingroom import pages
from waitingroom._asgi import (
    BodyTooLarge,
    html_response,
    json_response,
    query_params,
    read_body,
    same_origin_path,
)
from waitingroom._gate import RoomGate
from waitingroom._rooms import RoomDirectory
from waitingroom.engine import Engine, RoomConfig, RoomExists
from waitingroom.settings import ROOM_NAME

ADMIN_PREFIX = "/_wr/admin"
MAX_BODY_BYTES = 4096
_EVENTS_EVERY_SECONDS = 2.0
_EVENTS_MAX_SECONDS = 600  # the dashboard reconnects
MAX_CAPACITY = 10_000_000
_MESSAGE_LIMIT = 500
_CHOICES = {"mode": ("normal", "open", "closed"), "capture": ("auto", "on", "off")}
MAX_RATE = 10_000_000
MAX_INVITE_USES = 10_000
MAX_INVITE_SECONDS = 30 * 86_400
MAX_ROOM_PATHS = 20
_PATH_LIMIT = 200


class AdminAPI:
    """Serves the admin endpoints of every room in ``rooms``."""

    def __init__(
        self, *, engine: Engine, rooms: RoomDirectory, tokens: Sequence[str],
        issue_invite: Callable[[str, str], str],
    ) -> None:
        self.engine = engine
        self.rooms = rooms
        # "name:token" or a bare token; kept as bytes for the constant-time comparison.
        self._tokens = [(entry.rpartition(":")[0] or "admin",
                         entry.rpartition(":")[2].encode()) for entry in tokens]
        self._issue_invite = issue_invite

    @property
    def enabled(self) -> bool:
        """False when no token is configured: the admin API then does not exist."""
        return bool(self._tokens)

    def authenticate(self, scope: Scope) -> str | None:
        """The name of the caller's token, or None (compared in constant time)."""
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, presented = header.partition(b" ")
        who = None
        for name, token in self._tokens:  # every token is compared: no early exit
            if hmac.compare_digest(presented.strip(), token) and scheme.lower() == b"bearer":
                who = name
        return who

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled:
            response = json_response({"error": "not found"}, 404)
        elif scope["path"] == ADMIN_PREFIX + "/dashboard" and scope["method"] == "GET":
            # The page itself holds no data; everything it shows needs the token.
            gate = await self._gate(scope)
            response = (json_response({"error": "no such room"}, 404) if gate is None else
                        html_response(pages.dashboard_page(gate.room)))
        elif (who := self.authenticate(scope)) is None:
            response = json_response({"error": "unauthorized"}, 401)
            response.headers["www-authenticate"] = 'Bearer realm="waitingroom"'
        else:
            response = await self._route(scope, receive, who)
        await response(scope, receive, send)

    async def _gate(self, scope: Scope) -> RoomGate | None:
        """The room the ``room`` query parameter names (the configured one if none),
        with its config seeded."""
        name = query_params(scope).get("room")
        gate = self.rooms.default if name is None else await self.rooms.named(name)
        if gate is not None:
            await gate.room_config()
        return gate

    async def _route(self, scope: Scope, receive: Receive, who: str) -> Response:
        method, path = scope["method"], scope["path"]
        if path == "/_wr/metrics" and method == "GET":
            return Response(await self.metrics(), media_type="text/plain; version=0.0.4")
        if path == ADMIN_PREFIX + "/rooms":
            if method == "GET":
                return json_response({"rooms": [await self.snapshot(gate)
                                                for gate in await self.rooms.all()]})
            if method == "POST":
                return await self._create_room(receive, who)
            return json_response({"error": "method not allowed"}, 405)
        if path.startswith(ADMIN_PREFIX + "/rooms/") and method == "DELETE":
            return await self._revoke_room(path.rpartition("/")[2], who)
        gate = await self._gate(scope)
        if gate is None:
            return json_response({"error": "no such room"}, 404)
        if path == ADMIN_PREFIX + "/room":
            if method == "GET":
                return json_response(await self.snapshot(gate))
            if method == "POST":
                return await self._change(gate, receive, who)
            return json_response({"error": "method not allowed"}, 405)
        if path == ADMIN_PREFIX + "/events" and method == "GET":
            return StreamingResponse(self._events(gate), media_type="text/event-stream",
                                     headers={"cache-control": "no-store",
                                              "x-accel-buffering": "no"})
        if path == ADMIN_PREFIX + "/invites" and method == "POST":
            return await self._create_invite(gate, receive, who)
        if path == ADMIN_PREFIX + "/audit" and method == "GET":
            return json_response({"entries": await self.engine.read_audit(gate.room)})
        return json_response({"error": "not found"}, 404)

    async def sample(self, gate: RoomGate) -> dict[str, Any]:
        """One data point for the dashboard: the room's numbers now."""
        snapshot = await self.snapshot(gate)
        config, counts = snapshot["config"], snapshot["counts"]
        return {"t": int(time.time() * 1000), "waiting": counts["waiting"],
                "active": counts["active"], "capacity": config["capacity"],
                "admitted": counts["admitted"], "abandoned": counts["abandoned"],
                "rate": snapshot["admission_rate_per_second"] or 0.0,
                "breaker": snapshot["breaker"],
                "captures": await self.engine.capture_count(gate.room),
                "config": config}

    async def record_history(self, gate: RoomGate) -> None:
        """Take a sample of ``gate``'s room for the dashboard's charts when one is due."""
        if gate.history.due():
            gate.history.add(await self.sample(gate))

    async def _events(self, gate: RoomGate) -> AsyncIterator[bytes]:
        history = json.dumps(list(gate.history.samples))
        yield f"event: history\ndata: {history}\n\n".encode()
        deadline = time.monotonic() + _EVENTS_MAX_SECONDS
        while time.monotonic() < deadline:
            yield f"data: {json.dumps(await self.sample(gate))}\n\n".encode()
            await asyncio.sleep(_EVENTS_EVERY_SECONDS)

    async def snapshot(self, gate: RoomGate) -> dict[str, Any]:
        """The room as ops see it."""
        config = await self.engine.room_config(gate.room)
        counts = await self.engine.counts(gate.room)
        return {"room": gate.room, "paths": list(self.rooms.paths_of(gate.room)),
                "config": asdict(config), "counts": asdict(counts),
                "breaker": await self.engine.breaker_state(gate.room),
                "admission_rate_per_second": gate.rate.per_second()}

    async def _create_room(self, receive: Receive, who: str) -> Response:
        request = await _parsed_body(receive, _parse_room)
        if isinstance(request, Response):
            return request
        if request["name"] == self.rooms.default.room:
            return json_response({"error": "that is the configured room's name"}, 409)
        try:
            room = await self.engine.create_room(**request)
        except RoomExists:
            return json_response({"error": f"room {request['name']} already exists"}, 409)
        except ValueError as exc:  # too many rooms
            return json_response({"error": str(exc)}, 400)
        for audited in {room.name, self.rooms.default.room}:
            await self.engine.audit(audited, who, "create-room", {}, request)
        await self.rooms.reload()
        gate = await self.rooms.named(room.name)
        if gate is None:
            return json_response({"error": "the room was revoked meanwhile"}, 409)
        return json_response(await self.snapshot(gate), 201)

    async def _revoke_room(self, name: str, who: str) -> Response:
        if name == self.rooms.default.room:
            return json_response({"error": "the configured room cannot be revoked"}, 400)
        gate = await self.rooms.named(name)
        if gate is None or not await self.engine.revoke_room(name):
            return json_response({"error": "no such room"}, 404)
        before = {"name": name, "paths": list(self.rooms.paths_of(name))}
        for audited in (name, self.rooms.default.room):
            await self.engine.audit(audited, who, "revoke-room", before, {})
        await self.rooms.reload()
        return json_response({"revoked": name})

    async def _create_invite(self, gate: RoomGate, receive: Receive, who: str) -> Response:
        request = await _parsed_body(receive, _parse_invite)
        if isinstance(request, Response):
            return request
        invite_id = secrets.token_urlsafe(9)
        await self.engine.create_invite(gate.room, invite_id, uses=request["uses"],
                                        expires_in_seconds=request["expires_in_seconds"])
        await self.engine.audit(gate.room, who, "invite", {}, {"id": invite_id, **request})
        query = {"t": self._issue_invite(gate.room, invite_id), "to": request["to"]}
        if gate is not self.rooms.default:
            query["room"] = gate.room
        url = f"/_wr/invite?{urlencode(query)}"
        return json_response({"id": invite_id, "url": url, **request}, 201)

    async def _change(self, gate: RoomGate, receive: Receive, who: str) -> Response:
        changes = await _parsed_body(receive, _parse_changes)
        if isinstance(changes, Response):
            return changes
        before = await self.engine.room_config(gate.room)
        await self.engine.set_room_config(gate.room, **changes)
        after = await self.engine.room_config(gate.room)
        await self.engine.audit(gate.room, who, "update", *_changed(before, after))
        await gate.refresh_config()
        return json_response(await self.snapshot(gate))

    async def metrics(self) -> bytes:
        """Every room's numbers in Prometheus text format."""
        started = time.perf_counter()
        await self.engine.ping()
        latency = time.perf_counter() - started
        labels = ["room"]
        waits = HistogramMetricFamily(
            "waitingroom_wait_seconds", "Join-to-admission wait of visitors admitted by "
            "this process", labels=labels)
        gauges = {name: GaugeMetricFamily(name, help_text, labels=labels) for name, help_text in (
            ("waitingroom_queue_length", "Visitors waiting in line"),
            ("waitingroom_active_sessions", "Sessions admitted to the order flow"),
            ("waitingroom_capacity", "Concurrent sessions the order flow may have"),
            ("waitingroom_paused", "1 while admission is paused"),
            ("waitingroom_breaker_open", "1 while the breaker is open or half-open"),
            ("waitingroom_admission_rate", "Admissions per second over the last minute"),
        )}
        counters = {name: CounterMetricFamily(name, help_text, labels=labels)
                    for name, help_text in (
            ("waitingroom_admitted", "Visitors admitted"),
            ("waitingroom_abandoned", "Places released after the grace"),
            ("waitingroom_expired", "Sessions ended by idle or maximum time"),
            ("waitingroom_released", "Sessions ended by the origin"),
            ("waitingroom_captures", "Orders captured while the order flow was down"),
        )}
        for gate in await self.rooms.all():
            room = gate.room
            config = await self.engine.room_config(room)
            counts = await self.engine.counts(room)
            breaker = await self.engine.breaker_state(room)
            waits.add_metric([room], gate.wait_times.cumulative(),
                             sum_value=gate.wait_times.total)
            for name, value in (
                ("waitingroom_queue_length", counts.waiting),
                ("waitingroom_active_sessions", counts.active),
                ("waitingroom_capacity", config.capacity),
                ("waitingroom_paused", int(config.paused)),
                ("waitingroom_breaker_open", int(breaker != "closed")),
                ("waitingroom_admission_rate", gate.rate.per_second() or 0.0),
            ):
                gauges[name].add_metric([room], value)
            for name, total in (
                ("waitingroom_admitted", counts.admitted),
                ("waitingroom_abandoned", counts.abandoned),
                ("waitingroom_expired", counts.expired),
                ("waitingroom_released", counts.released),
                ("waitingroom_captures", await self.engine.capture_count(room)),
            ):
                counters[name].add_metric([room], total)
        redis_latency = GaugeMetricFamily("waitingroom_redis_latency_seconds",
                                          "One PING round trip, timed at the scrape")
        redis_latency.add_metric([], latency)
        families: list[Metric] = [waits, *gauges.values(), redis_latency, *counters.values()]
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed(families))
        ProcessCollector(registry=registry)  # this process's memory, CPU and files
        return generate_latest(registry)


class _Fixed:
    """A collector that yields metric families measured just before the scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


async def _parsed_body(
    receive: Receive, parse: Callable[[bytes], dict[str, Any]]
) -> dict[str, Any] | Response:
    """The request body parsed by ``parse``, or the 413/400 answer saying what is wrong."""
    try:
        return parse(await read_body(receive, MAX_BODY_BYTES))
    except BodyTooLarge:
        return json_response({"error": "body too large"}, 413)
    except ValueError as exc:
        return json_response({"error": str(exc)}, 400)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise ValueError("body must be a JSON object") from None
    if not isinstance(data, dict) or not data:
        raise ValueError("body must be a non-empty JSON object")
    return data


def _whole(data: dict[str, Any], key: str, low: int, high: int, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number {low}-{high}")
    return value


def _parse_invite(body: bytes) -> dict[str, Any]:
    data = _json_object(body) if body.strip() else {}
    unknown = set(data) - {"uses", "expires_in_seconds", "to"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    target = data.get("to", "/")
    if not isinstance(target, str) or not same_origin_path(target):
        raise ValueError("to must be a path on this site, like /checkout")
    return {"uses": _whole(data, "uses", 1, MAX_INVITE_USES, 1),
            "expires_in_seconds": _whole(data, "expires_in_seconds", 60, MAX_INVITE_SECONDS,
                                         86_400),
            "to": target}


def _parse_room(body: bytes) -> dict[str, Any]:
    data = _json_object(body)
    unknown = set(data) - {"name", "paths", "capacity", "rate", "message"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not ROOM_NAME.fullmatch(name):
        raise ValueError("name must be lowercase letters, digits and dashes, at most 32")
    paths = data.get("paths")
    if (not isinstance(paths, list) or not 1 <= len(paths) <= MAX_ROOM_PATHS
            or not all(isinstance(p, str) and p.startswith("/") and len(p) <= _PATH_LIMIT
                       and not p.startswith("/_wr/") for p in paths)):
        raise ValueError(f"paths must be 1-{MAX_ROOM_PATHS} patterns like /consoles/*, "
                         f"each starting with / (not /_wr/), at most {_PATH_LIMIT} characters")
    message = data.get("message", "")
    if not isinstance(message, str) or len(message) > _MESSAGE_LIMIT:
        raise ValueError(f"message must be text of at most {_MESSAGE_LIMIT} characters")
    return {"name": name, "paths": paths, "message": message,
            "capacity": _whole(data, "capacity", 1, MAX_CAPACITY, 0),
            "rate": _whole(data, "rate", 0, MAX_RATE, 0)}


def _parse_changes(body: bytes) -> dict[str, Any]:
    data = _json_object(body)
    unknown = set(data) - {"capacity", "paused", "mode", "message", "capture", "rate",
                           "start_at_ms"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    if "capacity" in data:
        _whole(data, "capacity", 1, MAX_CAPACITY, 0)
    if "rate" in data:
        _whole(data, "rate", 0, MAX_RATE, 0)
    if "start_at_ms" in data:  # 0 clears the schedule
        _whole(data, "start_at_ms", 0, 2**53, 0)
    if "paused" in data and not isinstance(data["paused"], bool):
        raise ValueError("paused must be true or false")
    message = data.get("message")
    if message is not None and (not isinstance(message, str)
                                or len(message) > _MESSAGE_LIMIT):
        raise ValueError(f"message must be text of at most {_MESSAGE_LIMIT} characters")
    for key, allowed in _CHOICES.items():
        if key in data and data[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    return data


def _changed(before: RoomConfig, after: RoomConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fields that changed: their old values, and their new ones."""
    old, new = asdict(before), asdict(after)
    keys = [k for k in old if old[k] != new[k]]
    return {k: old[k] for k in keys}, {k: new[k] for k in keys}
