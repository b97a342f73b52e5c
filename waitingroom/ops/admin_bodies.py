"""The admin API's request bodies: read within a size limit, checked field by field;
anything wrong is a 400 saying which field and why."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive

from waitingroom.engine.room_change import MAX_CAPACITY, MAX_RATE, MESSAGE_LIMIT, RoomChange
from waitingroom.settings import ROOM_NAME
from waitingroom.web.asgi import BodyTooLarge, json_response, read_body, same_origin_path

MAX_BODY_BYTES = 4096
MAX_INVITE_USES = 10_000
MAX_INVITE_SECONDS = 30 * 86_400
MAX_ROOM_PATHS = 20
_PATH_LIMIT = 200
PAST_TOLERANCE_MS = 60_000
"""A planned step's ``at_ms`` may lie this far behind this process's clock (another
machine's clock may run late); further back it is refused, not applied at once."""


async def parsed_body(
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


def parse_invite(body: bytes) -> dict[str, Any]:
    """``POST /_wr/admin/invites``: uses, expiry, target path (all optional)."""
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


def parse_room(body: bytes) -> dict[str, Any]:
    """``POST /_wr/admin/rooms``: a new room's name, paths, capacity, rate, message."""
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
    if not isinstance(message, str) or len(message) > MESSAGE_LIMIT:
        raise ValueError(f"message must be text of at most {MESSAGE_LIMIT} characters")
    return {"name": name, "paths": paths, "message": message,
            "capacity": _whole(data, "capacity", 1, MAX_CAPACITY, 0),
            "rate": _whole(data, "rate", 0, MAX_RATE, 0)}


def parse_changes(body: bytes) -> dict[str, Any]:
    """``POST /_wr/admin/room``: the live settings to change (``change``, a
    :class:`RoomChange`)."""
    return {"change": RoomChange.parse(_json_object(body))}


def parse_step(body: bytes) -> dict[str, Any]:
    """``POST /_wr/admin/timeline``: when (``at_ms``, epoch ms, or ``in_seconds`` from
    now) and the live settings to change then (``changes``, as for the room)."""
    data = _json_object(body)
    unknown = set(data) - {"at_ms", "in_seconds", "changes"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    if ("at_ms" in data) == ("in_seconds" in data):
        raise ValueError("give at_ms (epoch ms) or in_seconds, one of them")
    when = ({"at_ms": _whole(data, "at_ms", 0, 2**53, 0)} if "at_ms" in data else
            {"in_seconds": _whole(data, "in_seconds", 0, 366 * 86_400, 0)})
    if "at_ms" in when and when["at_ms"] < time.time() * 1000 - PAST_TOLERANCE_MS:
        raise ValueError("at_ms is in the past: in_seconds 0 applies the change at once")
    return {**when, "changes": RoomChange.parse(data.get("changes")).as_json()}
