"""``make loadtest``: a Locust scenario against the demo stack (or a URL), headless,
with a report, plots and a pass/fail verdict.

Without ``--url`` it starts the demo stack on loopback: a private Redis, the demo
shop (checkout capacity ``--capacity``) and ``waitingroom serve`` in front of it.
While Locust runs, the room (admin API) and the shop are sampled every second.
Afterwards it writes, under ``--out``: Locust's CSVs and HTML report, ``room.csv``,
``plots.png`` (queue length, admissions/s, active sessions vs capacity, p50/p99
latency over time) and ``verdict.txt``. It passes when:

- the origin never had more sessions than its capacity (the shop counts them; with
  ``--url`` the room's own count is checked instead),
- the error rate is at most ``--max-error-rate``,
- the p99 of the queue poll is at most ``--max-poll-p99-ms``.

Usage: python loadtests/run.py [--scenario spike|ramp|soak] [--seconds 60]
       [--base-users 10] [--peak-users 100] [--capacity 20] [--url URL] [--out DIR]
Traffic goes to loopback only, unless ``--url`` says otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import pairwise
from pathlib import Path

import httpx
import redis

from waitingroom.tools.redis_server import RedisServer, free_port

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import ROOT, SECRET, server, uvicorn_app  # noqa: E402

ADMIN_TOKEN = "loadtest:" + secrets.token_urlsafe(24)
POLL_NAME = "/_wr/status (poll)"


def main() -> int:
    """Run the scenario; 0 if every check passed."""
    args = _arguments()
    out = Path(args.out).resolve()  # Locust runs from loadtests/: never a relative path
    out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if args.url:
            url, shop_url, redis_url = args.url.rstrip("/"), None, ""
            token = os.environ.get("WAITINGROOM_ADMIN_TOKEN", "").rpartition(":")[2]
        else:
            url, shop_url, redis_url = stack.enter_context(
                _demo_stack(args.capacity, args.session_idle_seconds))
            token = ADMIN_TOKEN.rpartition(":")[2]
        sampler = _Sampler(url, shop_url, token, None if args.url else redis_url)
        sampler.start()
        locust = _run_locust(args, url, out)
        sampler.stop()
    sampler.write(out / "room.csv")
    verdict = _verdict(args, out, sampler, locust)
    _plot(out, sampler)
    (out / "verdict.txt").write_text(verdict)
    print(verdict)
    print(f"report: {out / 'report.html'}, plots: {out / 'plots.png'}")
    return 0 if verdict.startswith("PASS") else 1


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=("spike", "ramp", "soak"), default="spike")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--base-users", type=int, default=10)
    parser.add_argument("--peak-users", type=int, default=100)
    parser.add_argument("--capacity", type=int, default=20,
                        help="the demo shop's checkout capacity (demo stack only)")
    parser.add_argument("--think-seconds", type=float, default=3.0)
    parser.add_argument("--session-idle-seconds", type=int, default=30,
                        help="the room's session_idle_seconds: how long a shopper who "
                             "leaves without ordering holds a session (demo stack only)")
    parser.add_argument("--drain-seconds", type=float, default=120,
                        help="after the run, how long those still in line may take to be "
                             "served (no new shoppers meanwhile)")
    parser.add_argument("--url", help="target this waiting room instead of the demo stack "
                        "(admin token from WAITINGROOM_ADMIN_TOKEN)")
    parser.add_argument("--out", default=os.path.join(ROOT, "loadtest-report"))
    parser.add_argument("--max-error-rate", type=float, default=0.01)
    parser.add_argument("--max-poll-p99-ms", type=float, default=1000)
    parser.add_argument("--workers", type=int, default=0,
                        help="run Locust as a master and this many worker processes (as "
                             "across machines, here on one): 0 runs one process")
    return parser.parse_args()


@contextmanager
def _demo_stack(capacity: int, idle_seconds: int) -> Iterator[tuple[str, str, str]]:
    """Redis, the demo shop and ``waitingroom serve`` in front of it; yields the room's,
    the shop's and Redis's URLs."""
    with RedisServer() as redis_server, \
            server([*uvicorn_app("loadtests.run:demo_shop"), "--factory"],
                   {"WR_LOAD_CAPACITY": str(capacity),
                    "WR_LOAD_IDLE_SECONDS": str(idle_seconds)}) as shop_url:
        env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_REDIS_URL": redis_server.url,
               "WAITINGROOM_ORIGIN": shop_url, "WAITINGROOM_CAPACITY": str(capacity),
               "WAITINGROOM_GATED_PATHS": "/checkout*", "WAITINGROOM_ADMIN_TOKEN": ADMIN_TOKEN,
               "WAITINGROOM_SESSION_IDLE_SECONDS": str(idle_seconds),
               "WAITINGROOM_CAPTURE": "off",  # this measures queueing, not the breaker
               # Locust's shoppers all come from this machine: one network, which the
               # room would hold to its share of new places (docs/loadtesting.md).
               "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "0",
               "WAITINGROOM_CAPTURE_SPOOL_DIR": str(redis_server.directory / "spool")}
        with server([sys.executable, "-m", "waitingroom.cli", "serve", "--port", "{port}"],
                    env) as url:
            yield url, shop_url, redis_server.url


def demo_shop() -> object:
    """App factory for the demo shop process (its sessions idle out a second before
    the room's, so a slot the room hands on is free at the shop too)."""
    from waitingroom.tools.demo import DemoShop

    idle_seconds = max(1, int(os.environ["WR_LOAD_IDLE_SECONDS"]) - 1)
    return DemoShop(capacity=int(os.environ["WR_LOAD_CAPACITY"]),
                    session_idle_seconds=idle_seconds).app


class _Sampler(threading.Thread):
    """Reads the room's numbers (and the shop's) every second while the test runs."""

    def __init__(self, url: str, shop_url: str | None, token: str,
                 redis_url: str | None) -> None:
        super().__init__(daemon=True)
        self.url, self.shop_url, self.token = url, shop_url, token
        self.redis = redis.Redis.from_url(redis_url) if redis_url else None
        self.rows: list[dict[str, float]] = []
        self._done = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with httpx.Client(timeout=5) as client:
            while not self._done.wait(1.0):
                row: dict[str, float] = {"t": round(time.monotonic() - started, 1)}
                auth = {"Authorization": f"Bearer {self.token}"}
                try:
                    room = client.get(self.url + "/_wr/admin/room", headers=auth).json()
                    metrics = client.get(self.url + "/_wr/metrics", headers=auth).text
                    rss = re.search(r"^process_resident_memory_bytes (\S+)", metrics, re.M)
                    if rss:
                        row["app_rss_mb"] = round(float(rss.group(1)) / 2**20, 1)
                    if self.redis is not None:
                        used = self.redis.info("memory")["used_memory"]
                        row["redis_mb"] = round(used / 2**20, 2)
                    row.update(waiting=room["counts"]["waiting"], active=room["counts"]["active"],
                               admitted=room["counts"]["admitted"],
                               capacity=room["config"]["capacity"])
                    if self.shop_url:
                        shop = client.get(self.shop_url + "/api/stats").json()
                        row.update(shop_sessions=shop["sessions"],
                                   shop_peak=shop["peak_sessions"],
                                   shop_overloads=shop["overloads"])
                except (httpx.HTTPError, redis.RedisError, KeyError, ValueError) as exc:
                    print(f"sampler: {exc}", file=sys.stderr)
                    continue
                self.rows.append(row)
                if len(self.rows) % 10 == 0:
                    shop = (f", the shop holds {row['shop_sessions']:g}"
                            if "shop_sessions" in row else "")
                    print(f"  {row['t']:5.0f} s: {row['waiting']:g} waiting, "
                          f"{row['active']:g} of {row['capacity']:g} sessions{shop}, "
                          f"{row['admitted']:g} let in so far", flush=True)

    def stop(self) -> None:
        self._done.set()
        self.join()
        if self.redis is not None:
            self.redis.close()

    def write(self, path: Path) -> None:
        if not self.rows:
            return
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[-1]))
            writer.writeheader()
            writer.writerows(self.rows)


def _run_locust(args: argparse.Namespace, url: str, out: Path) -> int:
    command = [sys.executable, "-m", "locust", "-f", str(HERE / f"{args.scenario}.py"),
               "--headless", "--host", url, "--csv", str(out / "locust"),
               "--csv-full-history", "--html", str(out / "report.html"), "--only-summary",
               "--loglevel", "WARNING", "--seconds", str(args.seconds),
               "--base-users", str(args.base_users), "--peak-users", str(args.peak_users),
               "--think-seconds", str(args.think_seconds),
               "--drain-seconds", str(args.drain_seconds),
               "--stop-timeout", "5",  # at the very end: a visit in flight may finish
               "--outcomes-file", str(out / "outcomes.json")]
    print(f"{args.scenario}: {args.seconds:g} s of shoppers, then up to "
          f"{args.drain_seconds:g} s for the line to drain; a line every 10 s", flush=True)
    timeout = args.seconds + args.drain_seconds + 120
    if not args.workers:
        return subprocess.run(command, cwd=HERE, timeout=timeout).returncode
    port = free_port()
    master = [*command, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
              str(port), "--expect-workers", str(args.workers)]
    worker = [sys.executable, "-m", "locust", "-f", str(HERE / f"{args.scenario}.py"),
              "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
              "--loglevel", "WARNING", "--think-seconds", str(args.think_seconds)]
    workers = [subprocess.Popen(worker, cwd=HERE) for _ in range(args.workers)]
    try:
        return subprocess.run(master, cwd=HERE, timeout=timeout).returncode
    finally:
        for process in workers:  # they leave when the master quits
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _locust_rows(out: Path, name: str) -> list[dict[str, str]]:
    path = out / f"locust_{name}.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _verdict(args: argparse.Namespace, out: Path, sampler: _Sampler, locust: int) -> str:
    stats = {row["Name"]: row for row in _locust_rows(out, "stats")}
    total = stats.get("Aggregated", {})
    requests = int(total.get("Request Count", 0) or 0)
    failures = int(total.get("Failure Count", 0) or 0)
    error_rate = failures / requests if requests else 0.0
    poll = stats.get(POLL_NAME, {})
    poll_p99 = float(poll.get("99%", 0) or 0)
    if not requests:
        return (f"NO DATA: {args.scenario}: Locust left no request figures in {out} "
                f"(it exited with {locust}), so there is nothing to judge.\n")
    checks: list[tuple[bool, str]] = []
    if sampler.rows and "shop_peak" in sampler.rows[-1]:
        peak = max(r["shop_peak"] for r in sampler.rows)
        overloads = max(r["shop_overloads"] for r in sampler.rows)
        checks.append((peak <= args.capacity and overloads == 0,
                       f"origin sessions at most {peak:g} (capacity {args.capacity}), "
                       f"{overloads:g} overloads"))
    else:
        peak = max((r["active"] - r["capacity"] for r in sampler.rows), default=1)
        checks.append((bool(sampler.rows) and peak <= 0,
                       "room's active sessions never above its capacity"))
    checks.append((error_rate <= args.max_error_rate,
                   f"error rate {error_rate:.2%} of {requests} requests "
                   f"(at most {args.max_error_rate:.0%})"))
    checks.append((bool(poll) and poll_p99 <= args.max_poll_p99_ms,
                   f"queue poll p99 {poll_p99:g} ms over {poll.get('Request Count', 0)} polls "
                   f"(at most {args.max_poll_p99_ms:g} ms)"))
    checks.append((locust == 0 or failures > 0, f"locust exited with {locust}"))
    checks += _memory_checks(sampler.rows)
    admitted = sampler.rows[-1].get("admitted", 0) if sampler.rows else 0
    lines = [f"{'PASS' if all(ok for ok, _ in checks) else 'FAIL'}: {args.scenario}, "
             f"{args.seconds:g} s, {args.base_users}->{args.peak_users} users; "
             f"{admitted:g} shoppers admitted, longest line "
             f"{max((r.get('waiting', 0) for r in sampler.rows), default=0):g}"]
    lines += [f"  [{'ok' if ok else 'FAIL'}] {text}" for ok, text in checks]
    lines += _explained(args, out, sampler.rows, stats)
    return "\n".join(lines) + "\n"


def _explained(args: argparse.Namespace, out: Path, rows: list[dict[str, float]],
               stats: dict[str, dict[str, str]]) -> list[str]:
    """Where the shoppers went, matching the room's count to Locust's, and the end
    state in words."""
    path = out / "outcomes.json"
    seen = json.loads(path.read_text()) if path.exists() else {}
    after_wait = int(stats.get("checkout (admitted)", {}).get("Request Count", 0) or 0)
    reporting = seen.get("workers reporting")
    lines = [f"  shoppers: {seen.get('arrived', 0)} arrived; {seen.get('straight in', 0)} "
             f"straight in, {seen.get('let in after waiting', 0)} let in after waiting "
             f"(Locust's 'checkout (admitted)': {after_wait}), {seen.get('gave up', 0)} gave "
             f"up waiting, {seen.get('left without ordering', 0)} left without ordering, "
             f"{seen.get('ordered', 0)} ordered"
             + (f" (from {reporting} workers)" if reporting is not None else "")]
    if rows:
        last = rows[-1]
        told = last.get("admitted", 0) - seen.get("straight in", 0) - seen.get(
            "let in after waiting", 0)
        lines.append(f"  the room let in {last.get('admitted', 0):g}: the shoppers above, and "
                     f"{told:g} let in whose shopper had just given up or been stopped")
        shop = last.get("shop_sessions")
        end = (f"  at the end: {last.get('waiting', 0):g} waiting, {last.get('active', 0):g} "
               f"of {last.get('capacity', 0):g} sessions"
               + (f" (the shop holds {shop:g})" if shop is not None else ""))
        if last.get("waiting", 0):
            end += (f"; the line had not drained {args.drain_seconds:g} s after the run "
                    "(those still in it had stopped asking, or the drain time was short)")
        else:
            end += "; the line drained"
        if shop is not None and last.get("active", 0) > shop:
            end += ("; sessions the shop no longer holds (shoppers who left without "
                    "ordering) end by the room's idle timeout")
        lines.append(end)
    return lines


def _memory_checks(rows: list[dict[str, float]]) -> list[tuple[bool, str]]:
    """After a minute's warm-up the app's memory must stay flat (within 10%); Redis's is
    reported beside the line it holds."""
    warm = [r for r in rows if r["t"] >= 60 and "app_rss_mb" in r]
    if len(warm) < 60:  # under two minutes of figures: too short to judge growth
        return []
    first, last = warm[0], warm[-1]
    growth = (last["app_rss_mb"] - first["app_rss_mb"]) / first["app_rss_mb"]
    checks = [(growth <= 0.10, f"app memory {first['app_rss_mb']:g} MB at 1 min, "
                               f"{last['app_rss_mb']:g} MB at the end ({growth:+.1%}; "
                               "at most +10%)")]
    if "redis_mb" in last:
        checks.append((True, f"redis memory {first['redis_mb']:g} MB -> {last['redis_mb']:g} "
                             f"MB while the line went {first['waiting']:g} -> "
                             f"{last['waiting']:g}"))
    return checks


def _plot(out: Path, sampler: _Sampler) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = sampler.rows
    history = [r for r in _locust_rows(out, "stats_history") if r["Name"] in
               ("Aggregated", POLL_NAME)]
    figure, axes = pyplot.subplots(2, 2, figsize=(12, 8))
    (queue, admissions), (sessions, latency) = axes
    t = [r["t"] for r in rows]
    queue.plot(t, [r.get("waiting", 0) for r in rows], color="#0b5cad", label="waiting")
    users = [r for r in _locust_rows(out, "stats_history") if r["Name"] == "Aggregated"]
    if users:
        first = int(users[0]["Timestamp"])
        queue.plot([int(r["Timestamp"]) - first for r in users],
                   [int(r["User Count"]) for r in users], color="#4a4a4a", linestyle="--",
                   label="Locust users")
    queue.set_title("Queue length and shoppers")
    queue.legend()
    admitted = [r.get("admitted", 0) for r in rows]
    admissions.plot(t[1:], [b - a for a, b in pairwise(admitted)],
                    color="#8250df")
    admissions.set_title("Admissions per second")
    sessions.plot(t, [r.get("capacity", 0) for r in rows], color="#b00020", label="capacity",
                  linewidth=3)
    sessions.plot(t, [r.get("active", 0) for r in rows], color="#1a7f37",
                  label="active (room)")
    if rows and "shop_sessions" in rows[-1]:
        sessions.plot(t, [r["shop_sessions"] for r in rows], color="#9a6700",
                      label="sessions (origin)", linestyle="--")
    sessions.set_title("Active sessions vs capacity")
    sessions.legend()
    if history:
        start = int(history[0]["Timestamp"])
        for name, colour in (("Aggregated", "#0b5cad"), (POLL_NAME, "#b00020")):
            points = [r for r in history if r["Name"] == name and r["50%"] not in ("N/A", "")]
            when = [int(r["Timestamp"]) - start for r in points]
            latency.plot(when, [float(r["50%"]) for r in points], color=colour,
                         label=f"{name} p50")
            latency.plot(when, [float(r["99%"]) for r in points], color=colour,
                         linestyle=":", label=f"{name} p99")
        latency.legend()
    latency.set_title("Latency, ms")
    for axis in axes.flat:
        axis.set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(out / "plots.png")
    pyplot.close(figure)


if __name__ == "__main__":
    sys.exit(main())
