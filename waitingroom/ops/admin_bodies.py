"""The admin API's request bodies: read within a size limit, checked field by field;
anything wrong is a 400 saying which field and why."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive

from waitingroom.engine.rooms import CAPACITY_MODES, CAPTURE_MODES, METHODS, MODES
from waitingroom.settings import ROOM_NAME
from waitingroom.web.asgi import BodyTooLarge, json_response, read_body, same_origin_path

MAX_BODY_BYTES = 4096
MAX_CAPACITY = 10_000_000
_MESSAGE_LIMIT = 500
_CHOICES = {"mode": MODES, "capture": CAPTURE_MODES, "method": METHODS,
            "capacity_mode": CAPACITY_MODES}
MAX_RATE = 10_000_000
MAX_STOCK = 1_000_000_000
"""The most units a room may be told it has."""
MAX_INVITE_USES = 10_000
MAX_INVITE_SECONDS = 30 * 86_400
MAX_ROOM_PATHS = 20
_PATH_LIMIT = 200


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
    if not isinstance(message, str) or len(message) > _MESSAGE_LIMIT:
        raise ValueError(f"message must be text of at most {_MESSAGE_LIMIT} characters")
    return {"name": name, "paths": paths, "message": message,
            "capacity": _whole(data, "capacity", 1, MAX_CAPACITY, 0),
            "rate": _whole(data, "rate", 0, MAX_RATE, 0)}


def parse_changes(body: bytes) -> dict[str, Any]:
    """``POST /_wr/admin/room``: the live settings to change."""
    return checked_changes(_json_object(body))


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
    changes = data.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise ValueError("changes must be an object of live settings, as for the room")
    return {**when, "changes": checked_changes(changes)}


def checked_changes(data: dict[str, Any]) -> dict[str, Any]:
    """Live settings to change, each checked; ValueError says what is wrong."""
    unknown = set(data) - {"capacity", "paused", "mode", "message", "capture", "rate",
                           "start_at_ms", "messages", "stock", "max_waiting",
                           "sales_per_session", "method", "capacity_mode", "capacity_min",
                           "capacity_max"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    if "capacity" in data:  # a capacity set by hand is pinned: the room learns no other
        _whole(data, "capacity", 1, MAX_CAPACITY, 0)
        data.setdefault("capacity_mode", "fixed")
    if data.get("capacity_mode") == "adaptive":
        low = _whole(data, "capacity_min", 1, MAX_CAPACITY, 0)
        _whole(data, "capacity_max", low, MAX_CAPACITY, 0)  # at least capacity_min
    elif "capacity_min" in data or "capacity_max" in data:
        raise ValueError("capacity_min and capacity_max go with capacity_mode adaptive")
    if "rate" in data:
        _whole(data, "rate", 0, MAX_RATE, 0)
    spend = data.get("sales_per_session", 1.0)
    if isinstance(spend, bool) or not isinstance(spend, int | float) or not (
            0.01 <= spend <= 1000):
        raise ValueError("sales_per_session must be a number 0.01-1000")
    if "max_waiting" in data:  # 0: no limit
        _whole(data, "max_waiting", 0, MAX_CAPACITY * 100, 0)
    if data.get("stock") is not None:
        _whole(data, "stock", 0, MAX_STOCK, 0)
    elif "stock" in data:  # null: stop counting stock
        data["stock"] = "off"
    if "start_at_ms" in data:  # 0 clears the schedule
        _whole(data, "start_at_ms", 0, 2**53, 0)
    if "paused" in data and not isinstance(data["paused"], bool):
        raise ValueError("paused must be true or false")
    message = data.get("message")
    if message is not None and (not isinstance(message, str)
                                or len(message) > _MESSAGE_LIMIT):
        raise ValueError(f"message must be text of at most {_MESSAGE_LIMIT} characters")
    messages = data.get("messages", {})
    if not isinstance(messages, dict) or len(messages) > 20 or not all(
            isinstance(k, str) and re.fullmatch(r"[a-z]{2,3}", k) and isinstance(v, str)
            and len(v) <= _MESSAGE_LIMIT for k, v in messages.items()):
        raise ValueError("messages must map language codes (en, fr, ...) to texts of at most "
                         f"{_MESSAGE_LIMIT} characters")
    for key, allowed in _CHOICES.items():
        if key in data and data[key] not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    return data
