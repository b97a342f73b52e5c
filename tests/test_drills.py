"""Fault drills with real parts: Redis slow, stalled, killed and restarted; a waiting
room process killed; an origin resetting connections. For each: what the visitor
sees, whether the cap held, whether anybody lost their place."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.servers import (
    Browser,
    FaultyLink,
    Origin,
    eventually,
    serve_in_process,
    waitingroom_serve,
)
from waitingroom.app import build_proxy_app
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import RedisServer

JSON = {"accept": "application/json"}


@pytest.mark.slow
async def test_slow_then_stalled_redis_costs_time_not_places_or_the_cap(
    redis_server: RedisServer, redis_url: str, make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    origin = Origin()
    async with FaultyLink(redis_server.port) as link:
        room = make_room(origin, redis_url=link.url, capacity=3, gated_paths=("/checkout*",))
        transport = httpx.ASGITransport(app=room)
        visitors = [Browser(transport=transport, base_url="http://shop.test",
                                      headers=JSON) for _ in range(12)]
        try:
            # Slow: 50 ms each way on every Redis exchange. Everyone still gets an
            # answer, the cap holds and the places are exact.
            link.delay = 0.05
            answers = await asyncio.gather(*(v.get("/checkout") for v in visitors))
            admitted = [a for a in answers if a.text == "origin:/checkout"]
            assert all(a.status_code == (200 if a in admitted else 429) for a in answers)
            positions = sorted(a.json()["position"] for a in answers if a not in admitted)
            assert len(admitted) == 3 and positions == list(range(1, 10))
            assert len({session for _, session in origin.seen}) == 3
            before = {id(v): (await v.get("/_wr/status")).json() for v in visitors}

            # Stalled: Redis holds every byte. A newcomer gets the retry page (503),
            # not a hang and not a 500; nobody new reaches the origin. Waiters keep
            # their positions from the process's copy of the line while it is fresh.
            link.delay = 0.0
            link.flowing.clear()
            waiter = next(v for v in visitors if before[id(v)]["state"] == "queued")
            now = (await waiter.get("/_wr/status")).json()
            assert places({0: now}) == places({0: before[id(waiter)]})
            started = time.monotonic()
            async with Browser(transport=transport, base_url="http://shop.test",
                                         headers=JSON) as newcomer:
                stalled = await asyncio.wait_for(newcomer.get("/checkout"), 60)
            print(f"stalled redis answered {stalled.status_code} after "
                  f"{time.monotonic() - started:.1f} s")
            assert stalled.status_code == 503 and stalled.headers["retry-after"] == "5"
            assert len(origin.seen) == 3

            # Flowing again: every place is where it was.
            link.flowing.set()
            after = {id(v): (await v.get("/_wr/status")).json() for v in visitors}
            # (The advised poll interval follows the admission rate, which fades while
            # nobody is let in: it may differ. The places may not.)
            assert places(after) == places(before)
        finally:
            await asyncio.gather(*(v.aclose() for v in visitors))
            await room.aclose()


@pytest.mark.slow
async def test_redis_killed_and_restarted_mid_launch_loses_no_place_or_session(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    origin = Origin()
    with RedisServer(appendfsync="always") as server:
        room = make_room(origin, redis_url=server.url, capacity=2, gated_paths=("/checkout*",))
        transport = httpx.ASGITransport(app=room)
        visitors = [Browser(transport=transport, base_url="http://shop.test",
                                      headers=JSON) for _ in range(6)]
        try:
            for visitor in visitors:
                await visitor.get("/checkout")
            before = [(await v.get("/_wr/status")).json() for v in visitors]
            server.stop(kill=True)
            async with Browser(transport=transport, base_url="http://shop.test",
                                         headers=JSON) as newcomer:
                down = await newcomer.get("/checkout")
            assert down.status_code == 503  # told to try again, not a 500
            server.start()
            after = [(await v.get("/_wr/status")).json() for v in visitors]
            assert after == before
            assert [s["state"] for s in after] == ["admitted"] * 2 + ["queued"] * 4
            async with Browser(transport=transport, base_url="http://shop.test",
                                         headers=JSON) as newcomer:
                late = (await newcomer.get("/checkout")).json()
            assert (late["state"], late["position"]) == ("queued", 5)  # the cap held
            assert len({session for _, session in origin.seen}) == 2
        finally:
            await asyncio.gather(*(v.aclose() for v in visitors))
            await room.aclose()


@pytest.mark.slow
async def test_a_killed_waiting_room_process_costs_nobody_their_place(
    room_env: dict[str, str],
) -> None:
    async with serve_in_process(Origin()) as origin_url:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin_url, "WAITINGROOM_CAPACITY": "2"}
        started: list[subprocess.Popen[bytes]] = []
        with waitingroom_serve(env, started=started) as doomed, \
                waitingroom_serve(env) as survivor:
            visitors = [Browser(headers=JSON) for _ in range(5)]
            try:
                for visitor in visitors:
                    await visitor.get(doomed + "/checkout")
                before = [(await v.get(doomed + "/_wr/status")).json() for v in visitors]
                started[0].kill()  # kill -9: no goodbye
                started[0].wait()
                # The load balancer sends them to the other process: same cookies, same
                # Redis, so the same places (and the admitted stay admitted).
                after = [(await v.get(survivor + "/_wr/status")).json() for v in visitors]
                assert after == before
                assert [s["position"] for s in after] == [None, None, 1, 2, 3]
            finally:
                await asyncio.gather(*(v.aclose() for v in visitors))


class _ResettingOrigin:
    """An origin that accepts the connection and drops it without an answer."""

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._drop, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _drop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.transport.abort()  # RST, not FIN


@pytest.mark.slow
async def test_an_origin_resetting_connections_gets_visitors_a_502_and_opens_the_breaker(
    make_settings: Callable[..., Settings],
) -> None:
    async with _ResettingOrigin() as origin_url:
        settings = make_settings(origin=origin_url, capacity=5, gated_paths=("/checkout*",),
                                 breaker_min_requests=3, breaker_window_seconds=5)
        room = build_proxy_app(settings)
        async with serve_in_process(room) as url, Browser(base_url=url) as visitor:
            answers = [await visitor.get("/checkout") for _ in range(4)]
            assert [a.status_code for a in answers] == [502] * 4
            assert "not answering" in answers[0].text

            async def capture_form() -> bool:
                return "action=\"/_wr/capture" in (await visitor.get("/checkout")).text

            # Orders are taken, not lost: the breaker opens within its next report.
            await eventually(capture_form, "the breaker opens on resets")
        await room.aclose()


@pytest.mark.parametrize(("policy", "expected"), [
    ("closed", [503, 503]), ("passes", [200, 503]), ("open", [200, 200])])
async def test_redis_down_policy_decides_who_gets_through(
    make_room: Callable[..., WaitingRoomMiddleware], policy: str, expected: list[int],
) -> None:
    from waitingroom.tickets import new_visitor_id
    from waitingroom.tools.redis_server import free_port

    origin = Origin()
    room = make_room(origin, redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_down=policy,
                     gated_paths=("/checkout*",))
    holder_id = new_visitor_id()
    holder_pass = room.tickets.issue_pass("default", holder_id)
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test",
                                 cookies={"wr_pass_default": holder_pass}) as holder, \
            Browser(transport=transport, base_url="http://shop.test") as new:
        answers = [await holder.get("/checkout"), await new.get("/checkout")]
    assert [a.status_code for a in answers] == expected
    sessions = [session for _, session in origin.seen]
    assert sessions == {"closed": [], "passes": [holder_id],
                        "open": [None, None]}[policy]


def places(statuses: dict[int, dict[str, Any]]) -> dict[int, tuple[str, int | None]]:
    """Each visitor's state and position, from their status answers."""
    return {key: (status["state"], status.get("position")) for key, status in statuses.items()}
