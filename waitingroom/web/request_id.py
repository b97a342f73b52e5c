"""Request ids: kept from the caller if sane, else made; echoed back in the answer
and carried by every log line written while the request is served."""

from __future__ import annotations

import contextvars
import os
import random
import re
import secrets

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
