"""Structured JSON logs, one object per line, each carrying the request id it belongs to."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_INCOMING_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_from(header: bytes | None) -> str:
    """The caller's X-Request-Id if it is sane, else a fresh one."""
    if header:
        value = header.decode("latin-1")
        if _INCOMING_ID.fullmatch(value):
            return value
    return secrets.token_hex(8)


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
    for name in ("waitingroom", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level)
