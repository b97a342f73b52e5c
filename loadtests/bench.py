"""``make bench``: waitingroom's hot paths as ratios to baselines measured in the same run.

Every server is its own uvicorn process (1 worker, uvloop/httptools, no access log);
wrk drives each in turn with 64 connections, baseline and subject alternating over
several rounds; each round's subject/baseline ratio is taken and the median of those
is reported. Machines here are 2-core and noisy, so only ratios from one run mean
anything, and pairing rounds keeps a host that slows down mid-run from skewing them.
Also reports Redis commands per request type and Redis memory per waiting visitor,
then the goals (poll >= 1.0; admitted >= 1.2, so that the proxy's strictness costs
little; a new arrival, both its requests, >= 1.0 one INCR request; <= 100 bytes a
waiter): met or MISSED, and exits 1 if any is missed. Traffic goes to 127.0.0.1 only.

Usage: python loadtests/bench.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import redis
from redis.asyncio import Redis

from waitingroom.engine import Engine
from waitingroom.engine.batch import MAX_BATCH
from waitingroom.tools.redis_server import RedisServer, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = secrets.token_urlsafe(32)


# Servers that serve in the process started (no worker processes): their CPU time per
# request is read from /proc, a figure less shaken by a noisy host than throughput.
_SINGLE_PROCESS: dict[str, int] = {}


@contextmanager
def server(args: list[str], env: dict[str, str] | None = None, *,
           workers: int = 1) -> Iterator[str]:
    """Run a server process on a free port; yield its URL once it answers."""
    port = free_port()
    cmd = [a.replace("{port}", str(port)) for a in args]
    process = subprocess.Popen(cmd, env={**os.environ, **(env or {}), "PYTHONPATH": ROOT},
                               cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    if workers == 1:
        _SINGLE_PROCESS[url] = process.pid
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(url + "/_wr/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{cmd} did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def uvicorn_app(target: str) -> list[str]:
    return [sys.executable, "-m", "uvicorn", target, "--port", "{port}", "--log-level",
            "warning", "--no-access-log", "--no-server-header", "--no-date-header"]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time process ``pid`` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, cookie: str | None = None) -> tuple[float, float | None]:
    """Requests per second wrk measured against ``url``, and the server process's CPU
    microseconds per request (None for a server with worker processes)."""
    pid = _SINGLE_PROCESS.get(url[:url.index("/", len("http://"))])
    cpu_before = cpu_seconds(pid) if pid else 0.0
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", url]
    if cookie:
        cmd[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or total is None or non2xx is not None:
        raise RuntimeError(f"wrk against {url} failed:\n{out}")
    cpu = 1e6 * (cpu_seconds(pid) - cpu_before) / int(total.group(1)) if pid else None
    return float(match.group(1)), cpu


def compare(rounds: int, seconds: int, pairs: dict[str, tuple[tuple[str, str | None],
                                                         tuple[str, str | None]]]
            ) -> dict[str, float]:
    """Print, and return, each pair's median ratio of subject to baseline."""
    results: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
    cpu: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
    for _ in range(rounds):
        for name, pair in pairs.items():
            for side, (url, cookie) in enumerate(pair):
                rate, cpu_per_request = wrk(url, seconds, cookie)
                results[name][side].append(rate)
                if cpu_per_request is not None:
                    cpu[name][side].append(cpu_per_request)
    ratios = {}
    for name, (base, subj) in results.items():
        # Each round runs baseline and subject back to back, so their ratio is robust to
        # the host slowing down over the run; report the median of those ratios.
        ratio = ratios[name] = statistics.median(s / b for s, b in zip(subj, base, strict=True))
        print(f"{name}: ratio {ratio:.2f} (median of per-round ratios; "
              f"{statistics.median(subj):,.0f} vs {statistics.median(base):,.0f} req/s; "
              f"rounds: {', '.join(f'{x:,.0f}' for x in subj)} vs "
              f"{', '.join(f'{x:,.0f}' for x in base)})")
        base_cpu, subject_cpu = cpu[name]
        if base_cpu and subject_cpu:
            print(f"  CPU per request in the server process: {statistics.median(subject_cpu):.0f}"
                  f" vs {statistics.median(base_cpu):.0f} us")
    return ratios


# Commands a client sends itself; everything else in commandstats ran inside a script.
_TOP_LEVEL = {"evalsha", "eval", "script|load", "hgetall", "hsetnx", "multi", "exec", "ping"
}


def redis_calls_per_request(redis_url: str, label: str, url: str, cookie: str | None,
                            n: int = 200) -> None:
    """Round trips (client commands) and script-internal commands per request,
    from INFO commandstats, for ``n`` sequential requests."""
    client = redis.Redis.from_url(redis_url)

    def totals() -> tuple[int, int]:
        stats = client.info("commandstats")
        calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()
                 if k != "cmdstat_info"}  # our own probes
        top = sum(c for k, c in calls.items() if k in _TOP_LEVEL)
        return top, sum(calls.values()) - top

    headers = {"Cookie": cookie} if cookie else {}
    with httpx.Client(headers=headers) as http:
        http.get(url)  # warm up: config seeded, scripts loaded
        top0, inner0 = totals()
        start = time.monotonic()
        for _ in range(n):
            http.get(url)
        elapsed = time.monotonic() - start
        top1, inner1 = totals()
    # Whatever the traffic, each process re-reads the room config once a second and
    # looks at the line twice a second.
    background = 3 * (int(elapsed) + 1)
    print(f"redis per request, {label}: {(top1 - top0) / n:.2f} round trips "
          f"(incl. <= {background} config reads and line looks in {elapsed:.1f}s), "
          f"{(inner1 - inner0) / n:.1f} commands inside scripts")
    client.close()


async def memory_per_waiting_visitor(redis_url: str, visitors: int = 20_000) -> float:
    """Print, and return, the bytes of Redis memory each waiting visitor takes, joining
    as the gate joins a new arrival (an id it just made); the answers kept 10 s for a
    retry are counted."""
    engine = Engine(Redis.from_url(redis_url), grace_seconds=600, session_idle_seconds=300,
                    session_max_seconds=1800)
    await engine.rooms.seed("memory", capacity=1)
    await engine.visit("memory", "holder000000")
    before = (await engine.redis.info("memory"))["used_memory"]
    for start in range(0, visitors, 200):
        await asyncio.gather(*(engine.visit("memory", f"v{i:011d}", new=True)
                               for i in range(start, start + 200)))
    after = (await engine.redis.info("memory"))["used_memory"]
    per_visitor = (after - before) / visitors
    print(f"redis memory per waiting visitor: {per_visitor:.0f} bytes ({visitors:,} visitors)")
    await engine.aclose()
    return per_visitor


async def arrivals_one_redis_core_sustains(redis_url: str, redis_pid: int,
                                           batches: int = 300) -> float:
    """Print, and return, how many new arrivals a second one Redis core sustains for
    one room when arrivals come as fast as that: the gates' batches are then full (64
    joins a script call), so this is the Redis CPU per join in full batches."""
    engine = Engine(Redis.from_url(redis_url), grace_seconds=600, session_idle_seconds=300,
                    session_max_seconds=1800)
    await engine.rooms.seed("ceiling", capacity=1)
    before = cpu_seconds(redis_pid)
    for batch in range(batches):
        await asyncio.gather(*(engine.visit("ceiling", f"c{batch:05d}{i:06d}", new=True)
                               for i in range(MAX_BATCH)))
    per_arrival = 1e6 * (cpu_seconds(redis_pid) - before) / (batches * MAX_BATCH)
    await engine.aclose()
    ceiling = 1e6 / per_arrival
    print(f"redis cpu per new arrival in full batches of {MAX_BATCH}: {per_arrival:.1f} us "
          f"(one Redis core: {ceiling:,.0f} arrivals/s for one room)")
    return ceiling


POLL = "queued status poll (/_wr/status) vs bare Starlette JSON route"
FIRST = ("a first visit (no cookie: the arrival page and a signed hello) vs bare Starlette "
         "route doing one Redis INCR")
PLACE = ("the request that takes the place (the hello back: a place + signed ticket + "
         "queue page) vs the same INCR route")
ARRIVAL = "new arrival, both requests (first visit + the place) vs one INCR request"
ADMITTED = "admitted request through serve vs bare aiohttp pass-through proxy"


def cookies_for(url: str) -> tuple[str, str, str]:
    """A session pass (admitted) and a queue ticket (waiting) from the capacity-1 room,
    and a first visit's hello cookie (its next request takes a place)."""
    jar = []
    for requests in (3, 2, 1):  # a first visit, then with its cookie; the holder's page
        with httpx.Client() as visitor:  # makes its session one like any (leave.js)
            for _ in range(requests):
                visitor.get(url + "/checkout")
            jar.append("; ".join(f"{k}={v}" for k, v in visitor.cookies.items()))
    return jar[0], jar[1], jar[2]


def redis_cpu_per_request(redis_pid: int, label: str, url: str, cookie: str | None,
                          seconds: int) -> float:
    """Print, and return, the Redis server's CPU microseconds per request under wrk's
    load (batched as in production), and what one Redis core would so sustain."""
    before = cpu_seconds(redis_pid)
    rps, _ = wrk(url, seconds, cookie)
    per_request = 1e6 * (cpu_seconds(redis_pid) - before) / (rps * seconds)
    ceiling = 1e6 / per_request if per_request else float("inf")
    print(f"redis cpu per {label}: {per_request:.1f} us under load "
          f"(one Redis core: {ceiling:,.0f}/s for one room)")
    return ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench needs wrk: apt-get install wrk")
    # At the shipped defaults: wrk's 64 connections share one session pass, exactly
    # session_max_concurrent_requests.
    # wrk is one client network: the room's share of new places per network is off.
    room_env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_CAPACITY": "1",
                "WAITINGROOM_GATED_PATHS": "/checkout*",
                "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "0"}
    serve = [sys.executable, "-m", "waitingroom.cli", "serve", "--port", "{port}"]
    with RedisServer() as redis_server, \
            server(uvicorn_app("loadtests.bench_apps:origin")) as origin, \
            server(uvicorn_app("loadtests.bench_apps:starlette_json")) as bare_json, \
            server(uvicorn_app("loadtests.bench_apps:starlette_incr"),
                   {"BENCH_REDIS_URL": redis_server.url}) as bare_incr, \
            server(uvicorn_app("loadtests.bench_apps:aiohttp_passthrough"),
                   {"BENCH_ORIGIN": origin}) as bare_proxy, \
            server(serve, {**room_env, "WAITINGROOM_ORIGIN": origin,
                           "WAITINGROOM_REDIS_URL": redis_server.url}) as room, \
            server([*serve, "--workers", "2"],
                   {**room_env, "WAITINGROOM_ORIGIN": origin,
                    "WAITINGROOM_REDIS_URL": redis_server.url}, workers=2) as room2:
        admitted, queued, hello = cookies_for(room)
        print(f"wrk -t1 -c64, {args.seconds}s x {args.rounds} rounds, medians; "
              f"{os.cpu_count()} cores")
        ratios = compare(args.rounds, args.seconds, {
            POLL:
                ((bare_json + "/_wr/status", None), (room + "/_wr/status", queued)),
            ADMITTED:
                ((bare_proxy + "/checkout", None), (room + "/checkout", admitted)),
            FIRST:
                ((bare_incr + "/checkout", None), (room + "/checkout", None)),
            PLACE:
                ((bare_incr + "/checkout", None), (room + "/checkout", hello)),
            "scaling: queued status poll, 2 workers vs 1":
                ((room + "/_wr/status", queued), (room2 + "/_wr/status", queued)),
            "scaling: new arrivals (the request that takes the place), 2 workers vs 1":
                ((room + "/checkout", hello), (room2 + "/checkout", hello)),
        })
        # Counted honestly, a new arrival is both requests: their times add up.
        ratios[ARRIVAL] = 1 / (1 / ratios[FIRST] + 1 / ratios[PLACE])
        print(f"{ARRIVAL}: ratio {ratios[ARRIVAL]:.2f}")
        redis_pid = redis_server.pid
        assert redis_pid is not None
        hello = cookies_for(room)[2]  # a fresh one: a hello is good for five minutes
        redis_cpu_per_request(redis_pid, "new arrival (the request that takes the place)",
                              room + "/checkout", hello, args.seconds)
        redis_cpu_per_request(redis_pid, "admitted request", room + "/checkout",
                              admitted, args.seconds)
        redis_cpu_per_request(redis_pid, "queued status poll (line look included)",
                              room + "/_wr/status", queued, args.seconds)
        redis_calls_per_request(redis_server.url, "queued status poll", room + "/_wr/status",
                             queued)
        redis_calls_per_request(redis_server.url, "admitted request", room + "/checkout",
                             admitted)
        redis_calls_per_request(redis_server.url, "open path (forwarded, not gated)",
                             room + "/", None)
        redis_calls_per_request(redis_server.url, "static asset of the queue page",
                             room + "/_wr/static/queue.css", None)
    # On a Redis of its own: the servers above keep sweeping their own walk-aways.
    with RedisServer() as quiet_redis:
        memory = asyncio.run(memory_per_waiting_visitor(quiet_redis.url))
        quiet_pid = quiet_redis.pid
        assert quiet_pid is not None
        arrivals_ceiling = asyncio.run(arrivals_one_redis_core_sustains(quiet_redis.url,
                                                                        quiet_pid))
    verdicts = [(f"{POLL} >= 1.0", ratios[POLL] >= 1.0, f"{ratios[POLL]:.2f}"),
                (f"{ADMITTED} >= 1.2", ratios[ADMITTED] >= 1.2, f"{ratios[ADMITTED]:.2f}"),
                (f"{ARRIVAL} >= 1.0", ratios[ARRIVAL] >= 1.0, f"{ratios[ARRIVAL]:.2f}"),
                ("redis memory per waiting visitor <= 100 bytes", memory <= 100,
                 f"{memory:.0f}"),
                ("new arrivals one Redis core sustains for one room >= 100,000/s",
                 arrivals_ceiling >= 100_000, f"{arrivals_ceiling:,.0f}")]
    for goal, met, figure in verdicts:
        print(f"goal {goal}: {'met' if met else 'MISSED'} ({figure})")
    sys.exit(0 if all(met for _, met, _ in verdicts) else 1)


if __name__ == "__main__":
    main()
