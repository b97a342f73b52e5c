"""Fixtures: one real redis-server for the session, flushed before every test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from waitingroom.engine import Engine
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import RedisServer

SECRET = "test-secret-" + secrets.token_hex(8)
TOKEN = "ops-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server; appendfsync always, so a kill -9 loses nothing acked."""
    with RedisServer(appendfsync="always") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's Redis, emptied for this test."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def make_settings(redis_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings pointing at the test Redis, with a test secret and spool folder."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"redis_url": redis_url, "secret": (SECRET,), "capacity": 2,
                                  "capture_spool_dir": str(tmp_path / "spool")}
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def engine(make_settings: Callable[..., Settings]) -> AsyncIterator[Engine]:
    """An engine on the test Redis (grace 60 s, idle 300 s, max 1800 s, the same idle
    after a session's first request)."""
    engine = Engine.from_settings(make_settings(session_first_idle_seconds=0))
    yield engine
    await engine.aclose()


@pytest.fixture
def room_env(redis_url: str) -> dict[str, str]:
    """Environment of a ``waitingroom serve`` process with an admin token (alice's)."""
    return {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_url,
            "WAITINGROOM_CAPACITY": "1", "WAITINGROOM_GATED_PATHS": "/checkout*,/done",
            "WAITINGROOM_ADMIN_TOKEN": f"alice:{TOKEN}"}


@pytest.fixture
async def make_room(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., WaitingRoomMiddleware]]:
    """Build the middleware in process around ``app`` (the test origin by default) with
    settings as :func:`make_settings` takes them; each is closed after the test."""
    from tests.servers import Origin

    built: list[WaitingRoomMiddleware] = []

    def make(app: Any = None, **settings: Any) -> WaitingRoomMiddleware:
        built.append(WaitingRoomMiddleware(app or Origin(), settings=make_settings(**settings)))
        return built[-1]

    yield make
    for middleware in built:
        await middleware.aclose()


@pytest.fixture
def room(make_room: Callable[..., WaitingRoomMiddleware]) -> WaitingRoomMiddleware:
    """The middleware in process (capacity 2, admin tokens of alice and bob) around
    the test origin."""
    return make_room(admin_token=(f"alice:{TOKEN}", "bob:another-token-0123456789"))
