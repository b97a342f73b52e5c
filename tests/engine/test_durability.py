"""Places and sessions survive a Redis crash (kill -9) with append-only persistence."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.places import Visitors
from waitingroom.engine import Engine, VisitState
from waitingroom.tools.redis_server import RedisServer

ROOM = "launch"


@pytest.mark.slow
async def test_places_and_sessions_survive_kill_9_of_redis() -> None:
    with RedisServer(appendfsync="always") as server:
        engine = Engine(Redis.from_url(server.url), grace_seconds=60,
                        session_idle_seconds=300, session_max_seconds=1800)
        line = Visitors(engine, ROOM)
        try:
            await engine.rooms.seed(ROOM, capacity=2)
            before = [await line.visit(f"visitor{i:04d}") for i in range(6)]
            server.stop(kill=True)
            server.start()
            await engine.redis.connection_pool.disconnect()
            after = [await line.visit(f"visitor{i:04d}", join=False)
                     for i in range(6)]
            assert [(v.state, v.position) for v in after] == [
                (v.state, v.position) for v in before]
            # The two sessions still hold their slots: a newcomer is not let in.
            newcomer = await line.visit("newcomer0000")
            assert (newcomer.state, newcomer.position) == (VisitState.WAITING, 5)
            assert (await engine.rooms.counts(ROOM)).active == 2
        finally:
            await engine.aclose()
