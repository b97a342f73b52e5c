"""Slow clients against the wall (issue 28): one address holding as many slow
connections as it can (heads a byte a second, bodies a byte a second, connections that
say nothing) while 200 shoppers buy; against the same launch without the attack. At
the shipped defaults, but for the capacity.

One ``waitingroom serve`` process (its deadlines and its network share of the origin's
connections are per process), Redis and an origin of HTML pages. The shoppers arrive
over 20 s from networks of their own (``browsing.py``), wait their turn on the event
stream, then load three pages and post a small form; each admitted request is timed.
The attacker, from 127.0.5.7, keeps up to ``--connections`` slow connections open,
opening a new one whenever one is cut.

Reported, each goal PASS or FAIL (the script exits 1 on a miss): the shoppers' admitted
requests, p99, at most 1.1x the run without the attack; no error for any shopper; the
attacker's connections cut at the deadlines (none open longer than the head deadline,
or the body's, plus two seconds).

Usage: python loadtests/slowloris.py [--shoppers 200] [--connections 900] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from bench import server  # noqa: E402
from browsing import Browser  # noqa: E402

from waitingroom.settings import Settings  # noqa: E402
from waitingroom.tools.local_server import serve_in_process  # noqa: E402
from waitingroom.tools.redis_server import RedisServer  # noqa: E402

SECRET = "slowloris-benchmark-secret-0123456789"
CAPACITY = 20
ATTACKER = "127.0.5.7"
HEAD_SECONDS = Settings().request_head_timeout_seconds
BODY_SECONDS = Settings().request_body_timeout_seconds
SLACK_SECONDS = 2.0


async def origin(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The shop: HTML pages; a POST is read whole; ``/done`` ends the session."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    release = [(b"x-waitingroom-release", b"1")] if scope["path"] == "/done" else []
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), *release]})
    await send({"type": "http.response.body", "body": b"<!doctype html><h1>shop</h1>"})


class Shoppers:
    """The launch: every admitted request's time, and every error a shopper met."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.times: list[float] = []
        self.errors: list[str] = []

    async def one(self) -> None:
        browser = Browser([self.url])
        try:
            _, page = await browser.open("/buy")
            if "<h1>shop</h1>" not in page:
                await browser.wait_turn("sse")
                await self._timed(browser.open("/buy"))
            for path in ("/page1", "/page2"):
                await asyncio.sleep(random.uniform(0.5, 1.5))
                await self._timed(browser.open(path))
            await self._timed(self._post(browser))
            await self._timed(browser.open("/done"))
        except Exception as exc:  # any failure is a shopper's error, counted
            self.errors.append(repr(exc))
        finally:
            await browser.aclose()

    async def _timed(self, request: Any) -> None:
        started = time.monotonic()
        status, _ = await request
        self.times.append(time.monotonic() - started)
        if status != 200:
            self.errors.append(f"status {status}")

    @staticmethod
    async def _post(browser: Browser) -> tuple[int, str]:
        async with browser.session.post(browser.url("/order"),
                                        data={"size": "large", "colour": "blue"}) as answer:
            return answer.status, await answer.text()


async def attack(url: str, connections: int, stop: asyncio.Event) -> list[float]:
    """Slow connections from one address until ``stop``; how long each stayed open."""
    host, port = url.removeprefix("http://").split(":")
    lifetimes: list[float] = []

    async def one(kind: int) -> None:
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, int(port),
                                                           local_addr=(ATTACKER, 0))
        except OSError:
            await asyncio.sleep(0.5)
            return
        try:
            if kind == 1:
                writer.write(b"POST /static/x HTTP/1.1\r\nHost: shop\r\n"
                             b"Content-Length: 100000\r\n\r\n")
            payload = b"GET /checkout HTTP/1.1\r\nHost: shop\r\nx-pad: " if kind == 0 else b"x"
            for byte in (payload * 1000) if kind != 2 else ():
                writer.write(bytes((byte,)))
                await writer.drain()
                if await _closed(reader, 1.0):
                    break
            else:
                await reader.read()  # says nothing, until cut
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            lifetimes.append(time.monotonic() - started)

    async def keep(kind: int) -> None:
        while not stop.is_set():
            await one(kind)

    tasks = [asyncio.create_task(keep(i % 3)) for i in range(connections)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return lifetimes


async def _closed(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), seconds) == b""
    except TimeoutError:
        return False


def _attack_in_a_process(url: str, connections: int, seconds: float,
                         out: multiprocessing.Queue[list[float]]) -> None:
    """The attacker in a process of its own, so that its thousand coroutines slow no
    shopper's client: ``seconds`` of attack, then how long its connections lived."""
    async def run() -> list[float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await attack(url, connections, stop)

    out.put(asyncio.run(run()))


async def launch(args: argparse.Namespace, *, attacked: bool) -> dict[str, Any]:
    random.seed(args.seed)
    with RedisServer() as redis_server:
        async with serve_in_process(origin) as origin_url:
            env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_server.url,
                   "WAITINGROOM_ORIGIN": origin_url, "WAITINGROOM_CAPACITY": str(CAPACITY),
                   "WAITINGROOM_OPEN_PATHS": "/static/*",  # the slow bodies go there
                   "WAITINGROOM_CAPTURE_SPOOL_DIR": str(redis_server.directory / "spool")}
            serve = [sys.executable, "-m", "waitingroom.cli", "serve", "--port", "{port}"]
            with server(serve, env) as url:
                shoppers = Shoppers(url)
                lifetimes: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
                attacker = multiprocessing.Process(target=_attack_in_a_process, args=(
                    url, args.connections, HEAD_SECONDS + args.seconds * 2, lifetimes))
                if attacked:
                    attacker.start()
                    await asyncio.sleep(HEAD_SECONDS)  # the attack in full before the launch
                start, visits = time.monotonic(), []
                for i in range(args.shoppers):
                    await asyncio.sleep(max(0.0, start + i * args.seconds / args.shoppers
                                            - time.monotonic()))
                    visits.append(asyncio.create_task(shoppers.one()))
                await asyncio.gather(*visits)
                cut = await asyncio.to_thread(lifetimes.get) if attacked else []
                if attacked:
                    attacker.join()
    return {"times": shoppers.times, "errors": shoppers.errors, "lifetimes": cut}


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=200)
    parser.add_argument("--connections", type=int, default=900)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=28)
    args = parser.parse_args()
    print(f"slowloris: {args.shoppers} shoppers over {args.seconds:g} s, without and with "
          f"{args.connections} slow connections from one address", flush=True)
    clean = asyncio.run(launch(args, attacked=False))
    dirty = asyncio.run(launch(args, attacked=True))
    ratio = p99(dirty["times"]) / p99(clean["times"])
    longest = max(dirty["lifetimes"], default=0.0)
    bound = max(HEAD_SECONDS, BODY_SECONDS) + SLACK_SECONDS
    print(f"  admitted requests, p99: {1000 * p99(clean['times']):.0f} ms without, "
          f"{1000 * p99(dirty['times']):.0f} ms with the attack (median "
          f"{1000 * statistics.median(dirty['times']):.0f} ms); the attacker opened "
          f"{len(dirty['lifetimes'])} connections")
    results = [
        ("shoppers' p99", ratio <= 1.1, f"{ratio:.2f}x the run without the attack "
                                        "(goal <= 1.1x)"),
        ("shoppers' errors", not dirty["errors"],
         f"{len(dirty['errors'])} {dirty['errors'][:3]} (goal 0)"),
        ("the attacker cut at the deadlines", longest <= bound,
         f"its longest connection {longest:.1f} s (bound {bound:g} s)"),
    ]
    for name, met, figure in results:
        print(f"{'PASS' if met else 'FAIL'}  {name}: {figure}")
    sys.exit(0 if all(met for _, met, _ in results) else 1)


if __name__ == "__main__":
    main()
