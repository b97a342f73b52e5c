"""Structured JSON logs, one object per line, each carrying its request's id."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from waitingroom.web.request_id import request_id


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
