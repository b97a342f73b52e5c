"""Fixtures: one real redis-server for the session, flushed before every test."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from waitingroom._redis_server import RedisServer
from waitingroom.engine import Engine
from waitingroom.settings import Settings

SECRET = "test-secret-" + secrets.token_hex(8)


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
    """An engine on the test Redis (grace 60 s, idle 300 s, max 1800 s)."""
    engine = Engine.from_settings(make_settings())
    yield engine
    await engine.aclose()
