"""Replaying captures into a recovered backend: order, retries, dead letters, a replay
killed mid-way, and export. The backend dedupes by Idempotency-Key and counts."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send

from tests.servers import read_body, serve_in_process
from waitingroom.capture.replay import Replayer
from waitingroom.engine import Engine, room_keys

ROOM = "default"


class OrderBackend:
    """Applies each order once per Idempotency-Key, like a well-behaved order API."""

    def __init__(self, *, delay: float = 0.0, flaky: set[str] | None = None) -> None:
        self.applied: Counter[str] = Counter()
        self.order: list[str] = []
        self.duplicates = 0
        self.delay = delay
        self.flaky = set(flaky or ())  # fail once with 503, then accept

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        key = dict(scope["headers"]).get(b"idempotency-key", b"").decode()
        order = json.loads(body)
        await asyncio.sleep(self.delay)
        if order["fields"]["name"] == "POISON":
            status = 422
        elif key in self.flaky:
            self.flaky.discard(key)
            status = 503
        else:
            status = 200
            if key in self.applied:
                self.duplicates += 1
            else:
                self.applied[key] += 1
                self.order.append(key)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def capture_orders(engine: Engine, names: list[str]) -> list[str]:
    references = []
    for i, name in enumerate(names):
        reference = f"WR-TEST-{i:04d}"
        assert await engine.captures.store(ROOM, reference, f"visitor{i:05d}", {"name": name},
                                    per_minute=10_000)
        references.append(reference)
    return references


@pytest.fixture
async def backend_url() -> AsyncIterator[tuple[OrderBackend, str]]:
    backend = OrderBackend(flaky={"WR-TEST-0003"})
    async with serve_in_process(backend) as url:
        yield backend, url + "/orders"


async def test_replay_delivers_in_order_retries_and_parks_poison(
    engine: Engine, backend_url: tuple[OrderBackend, str]
) -> None:
    backend, url = backend_url
    names = [f"customer {i}" for i in range(30)]
    names[7] = "POISON"
    references = await capture_orders(engine, names)
    out = io.StringIO()
    progress = await Replayer(engine, ROOM, url, max_tries=3, backoff_seconds=0.01,
                              out=out).run()
    assert (progress.delivered, progress.dead_lettered, progress.retries) == (29, 1, 3)
    good = [r for r in references if r != "WR-TEST-0007"]
    assert backend.order == good  # arrival order, the flaky one retried in place
    assert set(backend.applied.values()) == {1}
    dead = await engine.redis.xrange(room_keys(ROOM).dead)
    assert [d[1][b"reference"] for d in dead] == [b"WR-TEST-0007"]
    assert b"HTTP 422" in dead[0][1][b"error"]
    assert await engine.captures.backlog(ROOM) == 0
    assert "replayed 29, dead-lettered 1" in out.getvalue()
    # Nothing left: a second run delivers nothing again.
    assert (await Replayer(engine, ROOM, url, backoff_seconds=0.01).run()).delivered == 0


@pytest.mark.slow
async def test_a_replay_killed_mid_way_resumes_and_applies_each_order_once(
    engine: Engine, redis_url: str
) -> None:
    backend = OrderBackend(delay=0.03)
    references = await capture_orders(engine, [f"customer {i}" for i in range(40)])
    async with serve_in_process(backend) as url:
        command = [sys.executable, "-m", "waitingroom.cli", "replay", "--room", ROOM,
                   "--redis-url", redis_url, "--to", url + "/orders",
                   "--backoff-seconds", "0.01"]
        first = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
        for _ in range(300):
            if len(backend.applied) >= 10:
                break
            await asyncio.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
        assert 10 <= len(backend.applied) < 40
        second = await asyncio.create_subprocess_exec(*command,
                                                      stderr=asyncio.subprocess.PIPE)
        _, err = await second.communicate()
        assert second.returncode == 0, err.decode()
    assert sorted(backend.applied) == references
    assert set(backend.applied.values()) == {1}  # exactly once in effect
    assert backend.order == references
    assert await engine.captures.backlog(ROOM) == 0
    assert b"replayed" in err


async def test_export_as_csv_and_jsonl(engine: Engine, redis_url: str) -> None:
    await capture_orders(engine, ["Ann", "=HYPERLINK(\"http://evil\")"])
    outputs = {}
    for fmt in ("csv", "jsonl"):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "waitingroom.cli", "captures", "export", "--room", ROOM,
            "--redis-url", redis_url, "--format", fmt, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        assert process.returncode == 0 and b"exported 2 captures" in err
        outputs[fmt] = out.decode()
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert [r["reference"] for r in rows] == ["WR-TEST-0000", "WR-TEST-0001"]
    assert rows[0]["name"] == "Ann"
    assert rows[1]["name"].startswith("'=")  # no formula runs in a spreadsheet
    lines = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert lines[1]["fields"]["name"] == "=HYPERLINK(\"http://evil\")"
