"""Request ids end to end and structured JSON logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from tests.conftest import SECRET
from tests.servers import Browser, Origin
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.ops.logging import configure
from waitingroom.tools.redis_server import free_port
from waitingroom.web.request_id import request_id_from


class IdOrigin(Origin):
    """Remembers the request ids it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        self.ids.append(dict(scope["headers"]).get(b"x-request-id", b"").decode())
        await super().__call__(scope, receive, send)


@pytest.mark.parametrize(("sent", "kept"), [("abc-123", True), ("", False),
                                             ("x" * 65, False), ("bad id!", False)])
async def test_request_ids_are_kept_made_or_replaced_and_passed_on(
    make_room: Callable[..., WaitingRoomMiddleware], sent: str, kept: bool
) -> None:
    origin = IdOrigin()
    room = make_room(origin, open_paths=("/login",))
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as c:
        headers = {"X-Request-Id": sent} if sent else {}
        response = await c.get("/login", headers=headers)
        queued = await c.get("/_wr/health", headers=headers)
    rid = response.headers["x-request-id"]
    assert origin.ids == [rid]
    assert (rid == sent) is kept
    if not kept:
        assert len(rid) == 16 and int(rid, 16) >= 0
    # The waiting room's own answers carry an id when the caller sent one (a bad one
    # replaced), and none otherwise.
    assert ("x-request-id" in queued.headers) is bool(sent)
    if kept:
        assert queued.headers["x-request-id"] == sent


def test_serve_logs_json_lines_with_the_request_id(redis_url: str) -> None:
    port = free_port()
    env = {**os.environ, "WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_url,
           "WAITINGROOM_ORIGIN": f"http://127.0.0.1:{free_port()}",  # nobody listens there
           "WAITINGROOM_OPEN_PATHS": "/*"}
    process = subprocess.Popen([sys.executable, "-m", "waitingroom.cli", "serve", "--port",
                                str(port)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/x",
                                     headers={"X-Request-Id": "trace-42"})
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.status_code == 502
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    failed = [line for line in lines if "origin failed" in line["message"]]
    assert failed and failed[0]["request_id"] == "trace-42"
    assert failed[0]["level"] == "warning" and failed[0]["logger"] == "waitingroom.proxy"


def test_configured_logging_leaves_uvicorn_no_access_log_to_build() -> None:
    """uvicorn formats an access line's arguments for every request whenever its
    access logger has a handler anywhere (about 5% of a status poll's CPU)."""
    loggers = [logging.getLogger(n) for n in ("waitingroom", "uvicorn", "uvicorn.error",
                                               "uvicorn.access")]
    saved = [(lg.handlers, lg.propagate, lg.level) for lg in loggers]
    try:
        configure()
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        assert logging.getLogger("waitingroom").handlers  # our own logs still go out
    finally:  # other tests read logs through pytest's capture
        for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)


def test_made_request_ids_differ_across_requests_and_forked_processes() -> None:
    made = {request_id_from(None) for _ in range(10_000)}
    assert len(made) == 10_000
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # a worker forked from a preloaded app must not repeat our ids
        os.write(write, request_id_from(None).encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 64).decode() != request_id_from(None)
