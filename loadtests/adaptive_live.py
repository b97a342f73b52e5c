"""Adaptive capacity at its shipped settings, against a real origin: how fast the cap
finds a knee it is not told, and how close it then stays.

Three real ``waitingroom serve`` processes, Redis, and the tests' knee origin
(``loadtests/knee.py``: 37 shoppers at full speed, 0.4 s an answer; past 37 every answer
slows in proportion). A steady line of 90 shoppers, each making 10 requests once in,
then finishing and joining again. The room starts at ``--start`` (15) with adaptive
capacity between 5 and 200, deciding every ``--interval`` seconds (5, the default a
room ships with; the tests use 1 to stay short).

Reported: the cap each ``--interval``; the time until it was first within 15% of
the knee; over the last half of the run, the cap's range and mean and the shoppers
the origin served on average (the knee is the most it can serve at full speed); the
decisions taken.

Usage: python loadtests/adaptive_live.py [--interval 5] [--seconds 240] [--start 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from bench import server  # noqa: E402
from knee import KNEE, KneeOrigin, shop  # noqa: E402

from waitingroom.engine import Engine  # noqa: E402
from waitingroom.settings import Settings  # noqa: E402
from waitingroom.tools.local_server import serve_in_process  # noqa: E402
from waitingroom.tools.redis_server import RedisServer  # noqa: E402

SECRET = "adaptive-live-secret-0123456789"
TOKEN = "adaptive-live-token-0123456789"
SHOPPERS = 90
PROCESSES = 3


async def run(args: argparse.Namespace) -> dict[str, object]:
    """One run; the cap and the shoppers served, each second."""
    origin, stop = KneeOrigin(), asyncio.Event()
    caps: list[int] = []
    served: list[int] = []
    with RedisServer() as redis_server:
        engine = Engine.from_settings(Settings(redis_url=redis_server.url, secret=(SECRET,)))
        async with serve_in_process(origin) as origin_url:
            env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_server.url,
                   "WAITINGROOM_ORIGIN": origin_url, "WAITINGROOM_CAPACITY": str(args.start),
                   "WAITINGROOM_GATED_PATHS": "/checkout*,/done",
                   "WAITINGROOM_ADMIN_TOKEN": f"ops:{TOKEN}",
                   "WAITINGROOM_ADAPTIVE_INTERVAL_SECONDS": str(args.interval),
                   # The shoppers all come from loopback: one network, standing for many.
                   "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "0",
                   "WAITINGROOM_CAPTURE_SPOOL_DIR": str(redis_server.directory / "spool")}
            with ExitStack() as stack:
                serve = [sys.executable, "-m", "waitingroom.cli", "serve", "--port", "{port}"]
                urls = [stack.enter_context(server(serve, env)) for _ in range(PROCESSES)]
                async with httpx.AsyncClient(verify=False) as ops:
                    answer = await ops.post(
                        urls[0] + "/_wr/admin/room",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        json={"capacity_mode": "adaptive", "capacity_min": 5,
                              "capacity_max": 200})
                    answer.raise_for_status()
                shoppers = [asyncio.create_task(shop(url, SHOPPERS // PROCESSES, stop))
                            for url in urls]
                start = time.monotonic()
                try:
                    for second in range(1, args.seconds + 1):
                        await asyncio.sleep(max(0.0, start + second - time.monotonic()))
                        caps.append((await engine.rooms.config("default")).capacity)
                        served.append(len(origin.shoppers))
                finally:
                    stop.set()
                    await asyncio.gather(*shoppers)
        decisions = [e for e in await engine.rooms.read_audit("default", count=1000)
                     if e["who"] == "adaptive"]
        await engine.aclose()
    return {"caps": caps, "served": served, "decisions": len(decisions)}


def report(args: argparse.Namespace, result: dict[str, object]) -> str:
    """The run in words and figures."""
    caps, served = result["caps"], result["served"]
    assert isinstance(caps, list) and isinstance(served, list)
    half = len(caps) // 2
    near = [0.85 * KNEE <= cap <= 1.15 * KNEE for cap in caps]
    reached = near.index(True) + 1 if True in near else None
    settled, serving = caps[half:], served[half:]
    lines = [
        f"adaptive capacity, interval {args.interval} s, from {args.start}, knee {KNEE}, "
        f"{SHOPPERS} shoppers, {args.seconds} s",
        "cap every interval: " + " ".join(str(c) for c in caps[::args.interval]),
        f"first within 15% of the knee: {reached} s" if reached
        else "never within 15% of the knee",
        f"last {len(settled)} s: cap {min(settled)}-{max(settled)} "
        f"(mean {statistics.fmean(settled):.1f}, "
        f"{statistics.fmean(settled) / KNEE:.2f}x the knee); "
        f"origin served {statistics.fmean(serving):.1f} on average "
        f"({statistics.fmean(serving) / KNEE:.2f}x the knee)",
        f"decisions: {result['decisions']}",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=240)
    parser.add_argument("--start", type=int, default=15)
    args = parser.parse_args()
    print(report(args, asyncio.run(run(args))))


if __name__ == "__main__":
    main()
