"""Data-capture mode figures: breaker switch-over time and capture write throughput.

1. Switch-over: one ``waitingroom serve`` (default breaker settings unless given)
   in front of an origin the script controls; an admitted shopper requests the
   order flow at a steady rate; the origin starts answering 503 and the script
   measures how long until the shopper gets the capture form, then how long after
   the origin recovers until orders flow again.
2. Throughput: captures stored per second through the engine (64 at a time), with
   Redis at ``appendfsync always`` and at ``everysec``.

Traffic goes to 127.0.0.1 only. Usage: python loadtests/bench_capture.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time

import httpx
import uvicorn
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from waitingroom.engine import Engine
from waitingroom.tools.redis_server import RedisServer, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Origin:
    """An order system whose health the script switches."""

    healthy = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        status = 200 if self.healthy else 503
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"order"})


async def switch_over(redis_url: str, rate: float, warmup: float) -> None:
    origin = Origin()
    origin_port, port = free_port(), free_port()
    server = uvicorn.Server(uvicorn.Config(origin, host="127.0.0.1", port=origin_port,
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve())
    env = {**os.environ, "WAITINGROOM_SECRET": secrets.token_urlsafe(32),
           "WAITINGROOM_REDIS_URL": redis_url, "PYTHONPATH": ROOT,
           "WAITINGROOM_ORIGIN": f"http://127.0.0.1:{origin_port}",
           "WAITINGROOM_CAPTURE_SPOOL_DIR": os.path.join(ROOT, ".bench-spool")}
    room = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "waitingroom.cli", "serve", "--port", str(port), env=env)
    url = f"http://127.0.0.1:{port}/checkout"
    try:
        async with httpx.AsyncClient(timeout=10) as shopper:
            for _ in range(200):
                try:
                    await shopper.get(f"http://127.0.0.1:{port}/_wr/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)

            async def shop_until(done: str) -> float:
                start = time.monotonic()
                while True:
                    page = (await shopper.get(url)).text
                    if (done == "capture") == ("/_wr/capture" in page):
                        return time.monotonic() - start
                    await asyncio.sleep(1 / rate)

            deadline = time.monotonic() + warmup  # fill the breaker's window with successes
            while time.monotonic() < deadline:
                await shopper.get(url)
                await asyncio.sleep(1 / rate)
            origin.healthy = False
            to_capture = await shop_until("capture")
            origin.healthy = True
            to_normal = await shop_until("orders")
        print(f"breaker switch-over (window 10 s, ratio 0.5, min 5, cooldown 15 s, probes 3;"
              f" shopper at {rate:.0f} req/s after {warmup:.0f} s healthy): to capture "
              f"{to_capture:.2f} s, back to orders {to_normal:.2f} s after recovery")
    finally:
        room.terminate()
        await room.wait()
        server.should_exit = True
        await serving


async def throughput(appendfsync: str, records: int, concurrency: int) -> None:
    with RedisServer(appendfsync=appendfsync) as server:
        engine = Engine(Redis.from_url(server.url), grace_seconds=60,
                        session_idle_seconds=300, session_max_seconds=1800)
        fields = {"name": "Ann Smith", "email": "ann@example.com", "phone": "+44 7700 900123",
                  "product": "waitPhone 3G 16GB", "store": "Oxford Street", "consent": "yes"}
        queue = list(range(records))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                await engine.captures.store("bench", f"WR-BNCH-{i:08d}", f"visitor{i:05d}", fields,
                                     per_minute=1_000_000)

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
        stored = await engine.redis.xlen("wr:{bench}:captures")
        await engine.aclose()
    print(f"capture writes, appendfsync {appendfsync}: {records / elapsed:,.0f} records/s "
          f"({stored:,} stored, {concurrency} at a time)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="shopper requests/s")
    parser.add_argument("--warmup", type=float, default=12.0, help="healthy seconds first")
    parser.add_argument("--records", type=int, default=5000)
    args = parser.parse_args()
    with RedisServer() as redis_server:
        await switch_over(redis_server.url, args.rate, args.warmup)
    for policy in ("always", "everysec"):
        await throughput(policy, args.records, 64)


if __name__ == "__main__":
    asyncio.run(main())
