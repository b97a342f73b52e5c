"""Request ids (kept from the caller, or made; echoed back) and structured JSON logs,
one object per line, each carrying its request's id."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import random
import re
import secrets
from datetime import UTC, datetime

from starlette.types import Message, Send

REQUEST_ID_HEADER = b"x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Made ids come from a generator seeded once per process from the system's: no system
# call per request (secrets would make one), and, unlike a counter, they do not tell
# visitors how many requests a process has served. Ids need to be unique, not secret.
_ids = random.Random(secrets.randbits(128))
os.register_at_fork(after_in_child=lambda: _ids.seed(secrets.randbits(128)))  # no twins


def request_id_from(header: bytes | None) -> str:
    """The caller's X-Request-Id if it is sane, else a fresh one."""
    if header:
        value = header.decode("latin-1")
        if _INCOMING_ID.fullmatch(value):
            return value
    return f"{_ids.getrandbits(64):016x}"


def echo_request_id(send: Send, rid: str, *, ours: bool) -> Send:
    """Return the request id in the response. Our own answers never carry one, so
    they skip the duplicate check an origin's answer needs."""
    header = (REQUEST_ID_HEADER, rid.encode())

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            if ours or all(name != REQUEST_ID_HEADER for name, _ in headers):
                message["headers"] = [*headers, header]
        await send(message)

    return wrapped


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id"[, "error"]}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current:
            entry["request_id"] = current
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str = "WARNING") -> None:
    """Send waitingroom's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    for name in ("waitingroom", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level)
    # No access log (one line per request is the load balancer's job). uvicorn builds
    # each line's arguments whenever this logger has a handler anywhere, even one
    # that drops the line: so it has none.
    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
