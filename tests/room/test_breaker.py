"""The circuit breaker with real processes: the origin fails (503, refuses connections,
hangs past the timeout) and every waiting-room process switches to capture mode;
the origin recovers and normal admission resumes with places intact."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send

from tests.conftest import SECRET
from tests.servers import Browser, serve_in_process, waitingroom_serve
from waitingroom import middleware
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.tools.redis_server import free_port

pytestmark = pytest.mark.slow


class FlakyOrigin:
    """An order system whose health the test controls."""

    def __init__(self) -> None:
        self.mode = "ok"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self.mode == "hang":
            await asyncio.sleep(2)  # well past the proxy's 0.5 s timeout
        status = 503 if self.mode == "503" else 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"order:{scope['path']}".encode()})


@contextlib.asynccontextmanager
async def origin_on(origin: FlakyOrigin, port: int) -> AsyncIterator[None]:
    async with serve_in_process(origin, port=port):
        yield


async def until(check: object, what: str, attempts: int = 100) -> None:
    """Retry an async check (0.1 s apart) until it holds; time passing is the point."""
    for _ in range(attempts):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("failure", ["503", "refused", "hang"])
async def test_every_process_switches_to_capture_and_back(redis_url: str, failure: str) -> None:
    origin, port = FlakyOrigin(), free_port()
    env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_url,
           "WAITINGROOM_ORIGIN": f"http://127.0.0.1:{port}", "WAITINGROOM_CAPACITY": "1",
           "WAITINGROOM_GATED_PATHS": "/checkout*", "WAITINGROOM_ORIGIN_TIMEOUT_SECONDS": "0.5",
           "WAITINGROOM_BREAKER_WINDOW_SECONDS": "3", "WAITINGROOM_BREAKER_MIN_REQUESTS": "3",
           "WAITINGROOM_BREAKER_COOLDOWN_SECONDS": "1", "WAITINGROOM_BREAKER_PROBES": "2"}
    async with contextlib.AsyncExitStack() as down:
        await _launch_day(env, origin, port, failure, down)


async def _launch_day(env: dict[str, str], origin: FlakyOrigin, port: int, failure: str,
                      down: contextlib.AsyncExitStack) -> None:
    with waitingroom_serve(env) as one, waitingroom_serve(env) as two:
        await down.enter_async_context(origin_on(origin, port))
        async with Browser(timeout=10) as shopper, \
                Browser(timeout=10) as waiting:
            assert (await shopper.get(one + "/checkout")).text == "order:/checkout"
            assert (await waiting.get(two + "/_wr/status")).json()["position"] == 1

            if failure == "refused":
                await down.aclose()
            else:
                origin.mode = failure

            async def shopper_sees_the_form() -> bool:
                page = await shopper.get(one + "/checkout")
                return 'action="/_wr/capture?room=default"' in page.text

            await until(shopper_sees_the_form, "process one serves the capture form")

            async def other_process_says_capture() -> bool:
                return (await waiting.get(two + "/_wr/status")).json()["state"] == "capture"

            await until(other_process_says_capture, "process two reports capture")
            status = (await waiting.get(two + "/_wr/status")).json()
            assert status["position"] == 1  # the place is kept through capture mode
            form = (await waiting.get(two + "/checkout")).text
            assert 'action="/_wr/capture?room=default"' in form

            if failure == "refused":
                await down.enter_async_context(origin_on(origin, port))
            origin.mode = "ok"

            async def back_to_normal() -> bool:
                # The shopper keeps shopping: admitted requests are the breaker's probes.
                order = (await shopper.get(one + "/checkout")).text == "order:/checkout"
                status = (await waiting.get(two + "/_wr/status")).json()
                return order and status["state"] == "queued" and status["position"] == 1

            await until(back_to_normal, "the breaker closes; process two queues again, "
                        "same place")


async def test_a_health_check_closes_the_breaker_without_any_order_traffic(
    redis_url: str,
) -> None:
    origin, port = FlakyOrigin(), free_port()
    env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_url,
           "WAITINGROOM_ORIGIN": f"http://127.0.0.1:{port}", "WAITINGROOM_CAPACITY": "1",
           "WAITINGROOM_GATED_PATHS": "/checkout*", "WAITINGROOM_BREAKER_MIN_REQUESTS": "3",
           "WAITINGROOM_BREAKER_COOLDOWN_SECONDS": "1",
           "WAITINGROOM_HEALTH_CHECK_URL": f"http://127.0.0.1:{port}/health"}
    async with origin_on(origin, port):
        with waitingroom_serve(env) as url:
            async with Browser(timeout=10) as shopper, \
                    Browser(timeout=10) as waiting:
                await shopper.get(url + "/checkout")
                await waiting.get(url + "/checkout")
                origin.mode = "503"

                async def capturing() -> bool:
                    page = await shopper.get(url + "/checkout")
                    return 'action="/_wr/capture?room=default"' in page.text

                await until(capturing, "the capture form")
                origin.mode = "ok"  # and nobody in the order flow makes a request now

                async def queued_again() -> bool:
                    status = (await waiting.get(url + "/_wr/status")).json()
                    return status["state"] == "queued"

                await until(queued_again, "the health check closes the breaker")


async def test_a_tick_job_that_fails_does_not_stop_the_breakers_reports(
    room: WaitingRoomMiddleware,
) -> None:
    """A job's own bug is logged; before, it ended the breaker's reports (and every
    other tick job) for the life of the process."""
    the_room = room.rooms.default.room
    runs: asyncio.Queue[None] = asyncio.Queue()

    async def faulty() -> None:
        runs.put_nowait(None)
        raise ValueError("a bug in one job")

    the_room.every_tick(faulty)
    await the_room.config()  # starts the room's ticker, which runs the jobs
    for _ in range(3):
        await asyncio.wait_for(runs.get(), 5)
    assert the_room.ticker.running


async def test_shutdown_ends_in_bounded_time_whatever_hangs(
    room: WaitingRoomMiddleware, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job that never returns held shutdown for ever (an orchestrator then kills the
    process with the Redis pool open); now it is cut off, named in the log, and the
    pool closed."""
    monkeypatch.setattr(middleware, "SHUTDOWN_SECONDS", 0.5)
    the_room = room.rooms.default.room
    stuck = asyncio.Event()

    async def hangs() -> None:
        stuck.set()
        await asyncio.Event().wait()  # never set

    the_room.every_tick(hangs)
    await the_room.config()  # starts the room's ticker, which runs the jobs
    await asyncio.wait_for(stuck.wait(), 5)
    await asyncio.wait_for(room.aclose(), 5)
    assert "still running after 0.5 s at shutdown" in caplog.text
    assert "Ticker._run" in caplog.text
