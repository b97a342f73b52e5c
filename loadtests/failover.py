"""A Redis Cluster failover under load: how long after the replica wins its election
do visitors still get 503s?

A 3-master Cluster with replicas and three ``waitingroom serve`` processes
(deploy/local/cluster.py, no nginx needed: shoppers pick an instance at random), a
line of shoppers polling as the queue page does, then ``kill -9`` of the master that
holds the room's keys. The election is timed by asking the live nodes who holds the
room's slot every 20 ms. Goal (docs/operations.md): no answer is a 503 more than
0.5 s after the new master won.

Usage: python loadtests/failover.py [--shoppers 150] [--runs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy/local"))
from cluster import LocalCluster

_KEY = "wr:{default}:line"
GOAL_SECONDS = 0.5


def _elected(cluster: LocalCluster, old: int, at: list[float], stop: threading.Event) -> None:
    """Put the moment another node holds the room's slot in ``at``."""
    while not stop.is_set():
        try:
            if cluster.master_of(_KEY) != old:
                at.append(time.monotonic())
                return
        except Exception:
            pass
        time.sleep(0.02)


async def _shopper(ports: list[int], answers: list[tuple[float, int]], until: float) -> None:
    async with httpx.AsyncClient(headers={"accept": "application/json"}, timeout=10) as client:
        while time.monotonic() < until:
            port = random.choice(ports)
            try:
                response = await client.get(f"http://127.0.0.1:{port}/_wr/status?room=default")
                answers.append((time.monotonic(), response.status_code))
            except httpx.HTTPError:
                answers.append((time.monotonic(), 0))
            await asyncio.sleep(random.uniform(0.2, 0.4))


async def drill(shoppers: int, logs: Path | None = None
                ) -> tuple[float, list[tuple[float, int]], float]:
    """One failover: the election's moment, every answer, and the kill's (the
    instances' logs copied to ``logs``)."""
    with LocalCluster(capacity=20) as cluster:
        answers: list[tuple[float, int]] = []
        started = time.monotonic()
        until = started + 20
        tasks = [asyncio.create_task(_shopper(cluster.room_ports, answers, until))
                 for _ in range(shoppers)]
        await asyncio.sleep(6)
        old = cluster.master_of(_KEY)
        elected: list[float] = []
        stop = threading.Event()
        watcher = threading.Thread(target=_elected, args=(cluster, old, elected, stop))
        killed = time.monotonic()
        cluster.kill(f"redis-{old}")
        watcher.start()
        await asyncio.gather(*tasks)
        stop.set()
        watcher.join()
        if logs is not None:
            _keep_logs(cluster, logs)
        if not elected:
            raise RuntimeError("no failover within the drill")
        return elected[0], answers, killed


def _keep_logs(cluster: LocalCluster, logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for log in cluster.directory.glob("room-*.log"):
        shutil.copy(log, logs / log.name)


def report(elected: float, answers: list[tuple[float, int]], killed: float) -> bool:
    """Print one drill's figures; True if it met the goal."""
    failed = [t for t, status in answers if status >= 500 or status == 0]
    late = [t - elected for t in failed if t > elected + GOAL_SECONDS]
    print(f"election {elected - killed:.2f} s after the kill; {len(answers)} answers, "
          f"{len(failed)} failed ({sum(1 for t in failed if t < elected)} before the "
          f"election); {len(late)} more than {GOAL_SECONDS} s after it"
          + (f", the last {max(late):.2f} s after" if late else ""))
    return not late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=150)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="copy the instances' logs here")
    args = parser.parse_args()
    met = all([report(*asyncio.run(drill(args.shoppers, args.logs)))
               for _ in range(args.runs)])
    print("goal (no 503 later than 0.5 s after the election):", "met" if met else "NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
