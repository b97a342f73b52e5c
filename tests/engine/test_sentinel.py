"""Redis with Sentinel failover (``redis+sentinel://``): the primary holding the room
is killed; a Sentinel promotes the replica; admission goes on and the cap holds."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.servers import Browser, Origin
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.tools.redis_server import RedisServer, find_redis_server, free_port

JSON = {"accept": "application/json"}


class _Replicated:
    """A primary (AOF on), its replica and one Sentinel (quorum 1, 1 s down-after)."""

    def __init__(self, directory: Path) -> None:
        self.primary = RedisServer(directory=directory / "primary", appendfsync="always")
        self.replica_port, self.sentinel_port = free_port(), free_port()
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.primary.start()
        replica_dir = self.directory / "replica"
        replica_dir.mkdir()
        self._spawn([find_redis_server(), "--port", str(self.replica_port), "--dir",
                     str(replica_dir), "--replicaof", "127.0.0.1", str(self.primary.port),
                     "--appendonly", "yes", "--save", ""])
        config = self.directory / "sentinel.conf"
        config.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\n"
                          f"sentinel monitor wr 127.0.0.1 {self.primary.port} 1\n"
                          "sentinel down-after-milliseconds wr 1000\n"
                          "sentinel failover-timeout wr 5000\n")
        self._spawn([find_redis_server(), str(config), "--sentinel"])
        self._until(lambda: self._replica_info().get("master_link_status") == "up")
        self._until(lambda: self._sentinel().sentinel_master("wr")["num-slaves"] >= 1)

    def primary_port(self) -> int:
        return int(self._sentinel().sentinel_get_master_addr_by_name("wr")[1])

    def wait_for_failover(self) -> int:
        old = self.primary.port
        return self._until(lambda: (port := self.primary_port()) != old and port)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        self.primary.close()

    def _spawn(self, command: list[str]) -> None:
        self.processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))

    def _sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, decode_responses=True)

    def _replica_info(self) -> dict[str, object]:
        with redis.Redis(port=self.replica_port) as replica:
            return replica.info("replication")

    @staticmethod
    def _until(check: Callable[[], object], timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = check()
                if result:
                    return int(result)
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise AssertionError("the replicated Redis did not settle")


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[_Replicated]:
    setup = _Replicated(tmp_path)
    setup.start()
    yield setup
    setup.stop()


@pytest.mark.slow
async def test_after_a_sentinel_failover_admission_goes_on_and_the_cap_holds(
    replicated: _Replicated, make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    origin = Origin()
    room = make_room(origin, capacity=2, gated_paths=("/checkout*", "/done"),
                     redis_url=f"redis+sentinel://127.0.0.1:{replicated.sentinel_port}/wr")
    transport = httpx.ASGITransport(app=room)
    visitors = [Browser(transport=transport, base_url="http://shop.test",
                                  headers=JSON) for _ in range(6)]
    try:
        for visitor in visitors:
            await visitor.get("/checkout")

        async def standing() -> list[tuple[str, int | None]]:
            answers = [(await v.get("/_wr/status")).json() for v in visitors]
            return [(a["state"], a["position"]) for a in answers]

        before = await standing()
        assert before == [("admitted", None)] * 2 + [("queued", n) for n in range(1, 5)]
        await asyncio.to_thread(replicated.primary.stop, kill=True)
        started = time.monotonic()
        await asyncio.to_thread(replicated.wait_for_failover)
        while True:  # the client finds the new primary on its next tries
            try:
                after = await standing()
                break
            except (KeyError, ValueError):  # a 503 retry answer meanwhile
                await asyncio.sleep(0.2)
        print(f"sentinel failover: answering again {time.monotonic() - started:.1f} s "
              f"after the kill; {sum(b != a for b, a in zip(before, after, strict=True))} "
              f"of {len(before)} visitors' standing changed")
        assert after == before
        await visitors[0].get("/done")  # a session ends: the first in line goes in
        assert (await visitors[2].get("/_wr/status")).json()["state"] == "admitted"
        assert (await visitors[2].get("/checkout")).text == "origin:/checkout"
        assert len({session for _, session in origin.seen if session}) == 3
        assert (await visitors[3].get("/_wr/status")).json()["position"] == 1  # cap 2
    finally:
        await asyncio.gather(*(v.aclose() for v in visitors))
