"""The middleware starts and stops with the server whatever app it wraps: one that
ignores the lifespan protocol, one that raises on it, one that speaks it (whose own
start-up and shutdown still happen), and two that leave it after the start-up."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from starlette.types import Receive, Scope, Send

from tests.conftest import SECRET
from waitingroom.engine import room_keys
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.local_server import serve_in_process

said: list[str] = []


async def ignores(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain app: nothing but HTTP (returns at once on anything else)."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"shop"})


async def raises(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that asserts it is only ever given HTTP."""
    assert scope["type"] == "http"
    await ignores(scope, receive, send)


async def speaks(scope: Scope, receive: Receive, send: Send) -> None:
    """An app with a start-up and shutdown of its own."""
    if scope["type"] != "lifespan":
        await ignores(scope, receive, send)
        return
    while True:
        message = await receive()
        kind = message["type"].removeprefix("lifespan.")
        said.append(kind)
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return


async def leaves(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that starts and then returns, its shutdown never heard."""
    if scope["type"] != "lifespan":
        await ignores(scope, receive, send)
        return
    await receive()
    await send({"type": "lifespan.startup.complete"})


async def walks_off(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads its start-up and returns without a word."""
    if scope["type"] != "lifespan":
        await ignores(scope, receive, send)
        return
    await receive()


@pytest.mark.parametrize("app", [ignores, raises, speaks, leaves, walks_off])
async def test_the_room_starts_and_stops_with_the_server_whatever_it_wraps(
        app: Callable[..., object], redis_url: str) -> None:
    said.clear()
    async with aioredis.Redis.from_url(redis_url) as redis:
        before = len(await redis.client_list())
        room = WaitingRoomMiddleware(app, settings=Settings(  # type: ignore[arg-type]
            redis_url=redis_url, secret=(SECRET,), capacity=3))
        async with serve_in_process(room):
            # Started: the room was seeded before anyone came.
            assert await redis.hget(room_keys("default").config, "capacity") == b"3"
        # Stopped: every connection it opened to Redis is closed.
        assert len(await redis.client_list()) == before
    assert said == (["startup", "shutdown"] if app is speaks else [])
