"""Goodput from the shopper's seat: how much of the origin's capacity is in use while
people wait, how long a freed slot stays empty, and how long the line takes to drain.

Two real ``waitingroom serve`` processes (requests spread over both, as a load
balancer would) in front of an origin that records every session's requests, with
Redis. 400 shoppers arrive over 10 s: 300 wait their turn, browse three gated pages
about 3 s apart and finish (the origin ends the session); 60 walk away while waiting;
40 close the tab right after their first page. Waiting shoppers use the queue page's
own client: the event stream (``--client sse``, the default) or polling at the
interval the room advises (``--client poll``). ``--beacon``: pages carry
``/_wr/static/leave.js``, so a closed tab says so.

Every 100 ms the room's slots are sorted by what they hold: a session in use at the
origin, a closed tab's idle session, a slot held for a visitor on the way, or one held
for a walk-away; and how many wait. Reported (goals of issue 15): utilisation while
anyone waits (at the origin / capacity, and / capacity less closed-tab idle: ≥ 0.95),
handover (a session's end at the origin → the next session's first request there:
p99 ≤ 1 s with the event stream), drain time against the ideal (the shoppers' time at
the origin / capacity, from the first arrival: ≤ 1.1x), and the most sessions ever at
the origin (never above capacity). ``--plot`` draws capacity, held, at-origin and
waiting over time.

Usage: python loadtests/goodput.py [--client sse|poll] [--beacon] [--grace 60]
       [--idle 300] [--plot goodput.png]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from waitingroom.engine import room_keys
from waitingroom.tickets import Tickets
from waitingroom.tools.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from bench import server  # noqa: E402

from tests.servers import serve_in_process  # noqa: E402

SECRET = "goodput-benchmark-secret-0123456789"
CAPACITY = 20
ROOM = "default"
SAMPLE_SECONDS = 0.1


@dataclass
class Origin:
    """The shop: records each session's first request, last request and end."""

    first: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    closers: set[str] = field(default_factory=set)
    at_origin_max: int = 0

    def at_origin(self) -> int:
        """Sessions begun at the origin and not ended (closed tabs not counted)."""
        return sum(1 for s in self.first if s not in self.ended and s not in self.closers)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        session = headers.get(b"x-waitingroom-session", b"").decode()
        extra = []
        if session:
            now = time.monotonic()
            self.first.setdefault(session, now)
            if headers.get(b"x-persona") == b"closer":
                self.closers.add(session)
            if scope["path"] == "/done":
                self.ended[session] = now
                extra = [(b"x-waitingroom-release", b"1")]
            self.at_origin_max = max(self.at_origin_max, self.at_origin())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), *extra]})
        await send({"type": "http.response.body", "body": b"shop"})


class Shopper:
    """One shopper with its own cookies, talking to either room process."""

    def __init__(self, urls: list[str], persona: str, args: argparse.Namespace,
                 tickets: Tickets, personas: dict[str, str]) -> None:
        self.urls = urls
        self.persona = persona
        self.args = args
        self.tickets = tickets
        self.personas = personas
        # No overall timeout: at the defaults a shopper may wait longer than aiohttp's
        # default five minutes, and must not be counted as walking away.
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"x-persona": persona},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

    def _url(self, path: str) -> str:
        return random.choice(self.urls) + path

    async def get(self, path: str, **kw: Any) -> str:
        async with self.session.get(self._url(path), **kw) as answer:
            return await answer.text()

    def _learn_id(self) -> None:
        for cookie in self.session.cookie_jar:
            if cookie.key == f"wr_ticket_{ROOM}":
                place = self.tickets.read_place(cookie.value, ROOM)
                if place:
                    self.personas[place[0]] = self.persona

    async def visit(self) -> None:
        try:
            page = await self.get("/buy")
            self._learn_id()
            if page != "shop":
                if not await self._wait_turn():
                    return
                await self.get("/buy")  # the queue page goes on: the first page
            if self.persona == "closer":
                if self.args.beacon:
                    await self.session.post(self._url("/_wr/leave"))
                return
            for page_number in range(2):
                await asyncio.sleep(random.uniform(2.0, 4.0))
                await self.get(f"/page{page_number}")
            await asyncio.sleep(random.uniform(2.0, 4.0))
            await self.get("/done")
        finally:
            await self.session.close()

    async def _wait_turn(self) -> bool:
        give_up_at = (time.monotonic() + random.uniform(2.0, 20.0)
                      if self.persona == "walker" else float("inf"))
        try:
            async with asyncio.timeout(give_up_at - time.monotonic()
                                       if give_up_at != float("inf") else None):
                if self.args.client == "sse":
                    return await self._stream()
                return await self._poll()
        except TimeoutError:
            return False  # walked away

    async def _stream(self) -> bool:
        while True:
            async with self.session.get(self._url("/_wr/events")) as stream:
                async for line in stream.content:
                    if line.startswith(b"data: ") and b'"state":"admitted"' in line:
                        return True

    async def _poll(self) -> bool:
        while True:
            async with self.session.get(self._url("/_wr/status"),
                                        headers={"accept": "application/json"}) as answer:
                status = await answer.json()
            if status["state"] == "admitted":
                return True
            await asyncio.sleep(status["poll_after_seconds"])


@dataclass
class Sample:
    t: float
    held: int
    at_origin: int
    closed_idle: int
    on_the_way: int
    walkers: int
    waiting: int


async def sample(redis: Redis, origin: Origin, personas: dict[str, str], start: float,
                 out: list[Sample], stop: asyncio.Event) -> None:
    keys = room_keys(ROOM)
    while not stop.is_set():
        held = [i.decode() for i in await redis.zrange(keys.active, 0, -1)]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.seq)
            pipe.hget(keys.stats, "head")
            pipe.zcard(keys.priority)
            end, head, lane = await pipe.execute()
        counts = {"origin": 0, "closed": 0, "way": 0, "walker": 0}
        for session in held:
            persona = personas.get(session)
            if session in origin.first:
                counts["closed" if session in origin.closers else "origin"] += 1
            else:
                counts["walker" if persona == "walker" else "way"] += 1
        # Waiting: numbers between head and end (walk-aways not yet swept included,
        # as the room sees them) and the priority lane.
        waiting = max(0, int(end or 0) - int(head or 0)) + lane
        out.append(Sample(time.monotonic() - start, len(held), counts["origin"],
                          counts["closed"], counts["way"], counts["walker"], waiting))
        await asyncio.sleep(SAMPLE_SECONDS)


def handovers(origin: Origin) -> list[float]:
    """Each session's end paired with the next first request at the origin after it."""
    ends = sorted(origin.ended.values())
    firsts = sorted(origin.first.values())
    out, j = [], 0
    for end in ends:
        while j < len(firsts) and firsts[j] < end:
            j += 1
        if j == len(firsts):
            break
        out.append(firsts[j] - end)
        j += 1
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    random.seed(args.seed)
    personas_list = (["shopper"] * 300 + ["walker"] * 60 + ["closer"] * 40)
    random.shuffle(personas_list)
    tickets = Tickets([SECRET], ticket_max_age=86_400, pass_max_age=86_400)
    origin = Origin()
    samples: list[Sample] = []
    personas: dict[str, str] = {}
    with RedisServer() as redis_server:
        async with serve_in_process(origin) as origin_url:
            env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_server.url,
                   "WAITINGROOM_ORIGIN": origin_url, "WAITINGROOM_CAPACITY": str(CAPACITY),
                   "WAITINGROOM_CAPTURE": "off",
                   "WAITINGROOM_GRACE_SECONDS": str(args.grace),
                   "WAITINGROOM_SESSION_IDLE_SECONDS": str(args.idle),
                   "WAITINGROOM_CAPTURE_SPOOL_DIR": str(redis_server.directory / "spool")}
            if args.first_idle:
                env["WAITINGROOM_SESSION_FIRST_IDLE_SECONDS"] = str(args.first_idle)
            with ExitStack() as rooms:
                serve = [sys.executable, "-m", "waitingroom.cli", "serve", "--port", "{port}"]
                urls = [rooms.enter_context(server(serve, env)) for _ in range(2)]
                redis = Redis.from_url(redis_server.url)
                stop = asyncio.Event()
                start = time.monotonic()
                sampler = asyncio.create_task(sample(redis, origin, personas, start,
                                                     samples, stop))
                visits = []
                for i, persona in enumerate(personas_list):
                    await asyncio.sleep(max(0.0, start + i * 10 / len(personas_list)
                                            - time.monotonic()))
                    shopper = Shopper(urls, persona, args, tickets, personas)
                    visits.append(asyncio.create_task(shopper.visit()))
                await asyncio.gather(*visits, return_exceptions=True)
                drained = time.monotonic() - start
                stop.set()
                await sampler
                await redis.aclose()
    return summarise(args, origin, samples, start, drained)


def summarise(args: argparse.Namespace, origin: Origin, samples: list[Sample],
              start: float, drained: float) -> dict[str, Any]:
    busy = [s for s in samples if s.waiting > 0]
    share = {name: statistics.fmean(getattr(s, name) for s in busy) / CAPACITY
             for name in ("at_origin", "on_the_way", "closed_idle", "walkers")} if busy else {}
    share["free"] = 1 - sum(share.values()) if busy else 0.0
    without_idle = (statistics.fmean(s.at_origin / max(1, CAPACITY - s.closed_idle)
                                     for s in busy) if busy else 0.0)
    worked = sum(origin.ended[s] - origin.first[s] for s in origin.ended)
    ideal = worked / CAPACITY
    last_end = max(origin.ended.values()) - start if origin.ended else drained
    hand = handovers(origin)
    return {"client": args.client, "beacon": args.beacon, "grace": args.grace,
            "idle": args.idle, "first_idle": args.first_idle, "shares": share,
            "utilisation": share.get("at_origin", 0.0),
            "utilisation_without_closed_idle": without_idle,
            "handover_p50": percentile(hand, 50), "handover_p95": percentile(hand, 95),
            "handover_p99": percentile(hand, 99), "drain_seconds": last_end,
            "ideal_seconds": ideal, "drain_ratio": last_end / ideal if ideal else 0.0,
            "max_at_origin": origin.at_origin_max,
            "max_held": max((s.held for s in samples), default=0),
            "sessions_done": len(origin.ended), "samples": samples}


def report(result: dict[str, Any]) -> str:
    shares = result["shares"]
    lines = [
        f"client {result['client']}, beacon {'on' if result['beacon'] else 'off'}, grace "
        f"{result['grace']} s, idle {result['idle']} s, first idle "
        f"{result['first_idle'] or 'off'}; capacity {CAPACITY}",
        "use of capacity while someone waited:",
        *(f"  {name:<12} {value:5.2f}" for name, value in shares.items()),
        f"utilisation {result['utilisation']:.2f}; without closed-tab idle "
        f"{result['utilisation_without_closed_idle']:.2f} (goal >= 0.95)",
        f"handover p50 {result['handover_p50']:.2f} s, p95 {result['handover_p95']:.2f} s, "
        f"p99 {result['handover_p99']:.2f} s (goal p99 <= 1 s with sse)",
        f"drain {result['drain_seconds']:.1f} s vs ideal {result['ideal_seconds']:.1f} s: "
        f"{result['drain_ratio']:.2f}x (goal <= 1.1x); {result['sessions_done']} sessions done",
        f"most sessions at the origin {result['max_at_origin']}, most slots held "
        f"{result['max_held']} (capacity {CAPACITY})",
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    t = [s.t for s in samples]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, [CAPACITY] * len(t), "k--", label="capacity")
    ax.plot(t, [s.held for s in samples], label="slots held (active)")
    ax.plot(t, [s.at_origin for s in samples], label="in use at the origin")
    ax.plot(t, [min(s.waiting, 4 * CAPACITY) for s in samples], label="waiting (capped)",
            alpha=0.5)
    ax.set_xlabel("seconds since the first arrival")
    ax.set_ylabel("visitors")
    ax.set_title(f"goodput: client {result['client']}, beacon "
                 f"{'on' if result['beacon'] else 'off'}, idle {result['idle']} s")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("sse", "poll"), default="sse")
    parser.add_argument("--beacon", action="store_true")
    parser.add_argument("--grace", type=int, default=60)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--first-idle", type=int, default=0)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--plot", default="")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(report(result))
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
