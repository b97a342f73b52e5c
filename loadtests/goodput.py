"""Goodput from the shopper's seat, at the shipped defaults with no change to the
shop's pages: how much of the origin's capacity is in use while people wait, how long a
freed slot stays empty, and how long the line takes to drain.

Two real ``waitingroom serve`` processes (requests spread over both, as a load
balancer would) in front of an origin of HTML pages that records every session's
requests, with Redis. 400 shoppers arrive over 10 s, each a browser of its own
(``browsing.py``: its own network, the first visit's reload, the room's ``leave.js``
beacon where the page carries it, which the room adds by default): 300 wait their
turn, browse three gated pages about 3 s apart and finish (the origin ends the
session); 60 walk away while waiting; 40 close the tab right after their first page.
Waiting shoppers use the queue page's own client: the event stream (``--client sse``,
the default) or polling at the interval the room advises (``--client poll``).

Every 100 ms the room's slots are sorted by what they hold: a session in use at the
origin, a closed tab's session, a slot held for a visitor on the way, or one held for a
walk-away; and how many wait. The goals (issue 27), each reported PASS or FAIL, the
script exiting 1 on a miss: while anyone waits, the origin holds >= 0.85 of the
capacity, and >= 0.95 of what closed tabs leave; a freed slot's handover (a session's
end at the origin -> the next session's first request there) p99 <= 1 s; the line
drains within 1.1x the ideal (the shoppers' time at the origin / capacity). The cap
must hold: never more sessions at the origin than the capacity. ``--plot`` draws
capacity, held, at-origin and waiting over time (default:
``loadtest-report/goodput-<client>.png``).

Usage: python loadtests/goodput.py [--client sse|poll] [--grace N] [--idle N]
       [--first-idle N] [--no-leave-beacon] [--plot FILE]
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

from redis.asyncio import Redis

from waitingroom.engine import room_keys
from waitingroom.tickets import Tickets
from waitingroom.tools.redis_server import RedisServer

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from bench import server  # noqa: E402
from browsing import Browser  # noqa: E402

from waitingroom.tools.local_server import serve_in_process  # noqa: E402

SECRET = "goodput-benchmark-secret-0123456789"
CAPACITY = 20
ROOM = "default"
SAMPLE_SECONDS = 0.1
GOALS = {"at origin": 0.85, "at origin, less closed tabs": 0.95, "handover p99": 1.0,
         "drain": 1.1}


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
                    "headers": [(b"content-type", b"text/html; charset=utf-8"), *extra]})
        await send({"type": "http.response.body",
                    "body": b"<!doctype html><title>shop</title><h1>shop</h1>"})


class Shopper:
    """One shopper of a ``persona``: shopper, walker or closer."""

    def __init__(self, urls: list[str], persona: str, args: argparse.Namespace,
                 tickets: Tickets, personas: dict[str, str]) -> None:
        self.browser = Browser(urls, headers={"x-persona": persona})
        self.persona = persona
        self.args = args
        self.tickets = tickets
        self.personas = personas

    def _learn_id(self) -> None:
        for cookie in self.browser.session.cookie_jar:
            if cookie.key == f"wr_ticket_{ROOM}":
                place = self.tickets.read_place(cookie.value, ROOM)
                if place:
                    self.personas[place[0]] = self.persona

    async def visit(self) -> None:
        try:
            _, page = await self.browser.open("/buy")
            self._learn_id()
            if "<h1>shop</h1>" not in page:
                if not await self._wait_turn():
                    self.browser.close_tab()
                    return
                await self.browser.open("/buy")  # the queue page goes on: the first page
            if self.persona == "closer":
                await asyncio.sleep(random.uniform(0.5, 2.0))
                self.browser.close_tab()
                return
            for page_number in range(2):
                await asyncio.sleep(random.uniform(2.0, 4.0))
                await self.browser.open(f"/page{page_number}")
            await asyncio.sleep(random.uniform(2.0, 4.0))
            await self.browser.open("/done")
        finally:
            await self.browser.aclose()

    async def _wait_turn(self) -> bool:
        give_up = random.uniform(2.0, 20.0) if self.persona == "walker" else None
        try:
            async with asyncio.timeout(give_up):
                return await self.browser.wait_turn(self.args.client)
        except TimeoutError:
            return False  # walked away


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


async def progress(origin: Origin, samples: list[Sample], start: float,
                   stop: asyncio.Event) -> None:
    """A line every 10 s while the run goes on."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 10)
        except TimeoutError:
            last = samples[-1] if samples else None
            if last is not None:
                print(f"  {time.monotonic() - start:5.0f} s: {last.waiting} waiting, "
                      f"{last.held} slots held, {last.at_origin} at the origin, "
                      f"{len(origin.ended)} done", flush=True)


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
                   "WAITINGROOM_CAPTURE_SPOOL_DIR": str(redis_server.directory / "spool")}
            for name, value in (("GRACE_SECONDS", args.grace),
                                ("SESSION_IDLE_SECONDS", args.idle),
                                ("SESSION_FIRST_IDLE_SECONDS", args.first_idle)):
                if value is not None:  # else the shipped default
                    env[f"WAITINGROOM_{name}"] = str(value)
            if args.no_leave_beacon:
                env["WAITINGROOM_LEAVE_BEACON"] = "false"
            with ExitStack() as rooms:
                serve = [sys.executable, "-m", "waitingroom.cli", "serve", "--port", "{port}"]
                urls = [rooms.enter_context(server(serve, env)) for _ in range(2)]
                redis = Redis.from_url(redis_server.url)
                stop = asyncio.Event()
                start = time.monotonic()
                sampler = asyncio.create_task(sample(redis, origin, personas, start,
                                                     samples, stop))
                reporter = asyncio.create_task(progress(origin, samples, start, stop))
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
                await reporter
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
    return {"args": args, "shares": share, "utilisation": share.get("at_origin", 0.0),
            "utilisation_without_closed_idle": without_idle,
            "handover_p50": percentile(hand, 50), "handover_p95": percentile(hand, 95),
            "handover_p99": percentile(hand, 99), "drain_seconds": last_end,
            "ideal_seconds": ideal, "drain_ratio": last_end / ideal if ideal else 0.0,
            "max_at_origin": origin.at_origin_max,
            "max_held": max((s.held for s in samples), default=0),
            "sessions_done": len(origin.ended), "samples": samples}


def verdicts(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Each goal: (name, met, the figure against the goal)."""
    return [
        ("at origin", result["utilisation"] >= GOALS["at origin"],
         f"{result['utilisation']:.2f} of capacity while anyone waits (goal >= 0.85)"),
        ("at origin, less closed tabs",
         result["utilisation_without_closed_idle"] >= GOALS["at origin, less closed tabs"],
         f"{result['utilisation_without_closed_idle']:.2f} (goal >= 0.95)"),
        ("handover p99", result["handover_p99"] <= GOALS["handover p99"],
         f"{result['handover_p99']:.2f} s (goal <= 1 s)"),
        ("drain", result["drain_ratio"] <= GOALS["drain"],
         f"{result['drain_ratio']:.2f}x the ideal (goal <= 1.1x)"),
        ("the cap", result["max_at_origin"] <= CAPACITY and result["max_held"] <= CAPACITY,
         f"at most {result['max_at_origin']} at the origin, {result['max_held']} held "
         f"(capacity {CAPACITY})"),
    ]


def report(result: dict[str, Any]) -> str:
    args, shares = result["args"], result["shares"]
    shown = {name: "shipped default" if value is None else value for name, value in (
        ("grace", args.grace), ("idle", args.idle), ("first idle", args.first_idle))}
    lines = [
        f"client {args.client}, leave beacon {'off' if args.no_leave_beacon else 'on'}, "
        + ", ".join(f"{name} {value}" for name, value in shown.items())
        + f"; capacity {CAPACITY}",
        "use of capacity while someone waited:",
        *(f"  {name:<12} {value:5.2f}" for name, value in shares.items()),
        f"handover p50 {result['handover_p50']:.2f} s, p95 {result['handover_p95']:.2f} s; "
        f"drain {result['drain_seconds']:.1f} s vs ideal {result['ideal_seconds']:.1f} s; "
        f"{result['sessions_done']} sessions done",
        *(f"{'PASS' if met else 'FAIL'}  {name}: {figure}"
          for name, met, figure in verdicts(result)),
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, args = result["samples"], result["args"]
    t = [s.t for s in samples]
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(t, [CAPACITY] * len(t), "k--", label="capacity")
    ax.plot(t, [s.held for s in samples], label="slots held (active)")
    ax.plot(t, [s.at_origin for s in samples], label="in use at the origin")
    ax.plot(t, [s.closed_idle for s in samples], label="closed tabs' sessions")
    ax.plot(t, [min(s.waiting, 4 * CAPACITY) for s in samples], label="waiting (capped)",
            alpha=0.5)
    ax.set_xlabel("seconds since the first arrival")
    ax.set_ylabel("visitors")
    ax.set_title(f"goodput at the shipped defaults: client {args.client}")
    ax.legend(loc="upper right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", choices=("sse", "poll"), default="sse")
    parser.add_argument("--grace", type=int, help="grace_seconds (default: shipped)")
    parser.add_argument("--idle", type=int, help="session_idle_seconds (default: shipped)")
    parser.add_argument("--first-idle", type=int,
                        help="session_first_idle_seconds (default: shipped)")
    parser.add_argument("--no-leave-beacon", action="store_true",
                        help="leave_beacon off: the room adds no beacon to the shop's pages")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--plot", default="", help="where to draw the run "
                        "(default: loadtest-report/goodput-<client>.png)")
    args = parser.parse_args()
    print(f"goodput: 400 shoppers over 10 s, two serve processes, capacity {CAPACITY} "
          "(about 3 minutes)", flush=True)
    result = asyncio.run(run(args))
    print(report(result))
    plot(result, args.plot or f"loadtest-report/goodput-{args.client}.png")
    sys.exit(0 if all(met for _, met, _ in verdicts(result)) else 1)


if __name__ == "__main__":
    main()
