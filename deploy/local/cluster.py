"""``make cluster``: a whole scaled-out launch on one machine, every part a real process
on loopback.

- a Redis Cluster: 3 masters, each with a replica (cluster-node-timeout 1 s, AOF on);
- 3 ``waitingroom serve`` instances on it (``redis+cluster://``);
- the demo shop as the origin;
- nginx load-balancing the instances (Debian's nginx).

Run ``python deploy/local/cluster.py`` (Ctrl-C stops everything); the test suite uses
:class:`LocalCluster` for its scale-out and failover drills.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx
import redis

from waitingroom.tools.redis_server import find_redis_server

SLOTS = 16384
NODE_TIMEOUT_MS = 1000


class LocalCluster:
    """The processes of a scaled-out launch; a context manager that starts and stops
    them all."""

    def __init__(self, *, masters: int = 3, rooms: int = 3, capacity: int = 3) -> None:
        self.masters, self.capacity = masters, capacity
        self.directory = Path(tempfile.mkdtemp(prefix="wr-cluster-"))
        # Chosen together: a port chosen and let go can be chosen again (nginx once got a
        # Redis node's port, and the launch never became healthy).
        ports = iter(_free_ports(masters * 4 + rooms + 2))
        self.redis_ports = [next(ports) for _ in range(masters * 2)]
        # Each node's cluster bus port (Redis's default, port + 10000, may not exist).
        self.bus_ports = {port: next(ports) for port in self.redis_ports}
        self.room_ports = [next(ports) for _ in range(rooms)]
        self.shop_port, self.nginx_port = next(ports), next(ports)
        self.secret = secrets.token_urlsafe(32)
        self.admin_token = secrets.token_urlsafe(24)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """nginx: where visitors go."""
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def shop_url(self) -> str:
        """The demo shop, directly (its ``/api/stats`` counts sessions)."""
        return f"http://127.0.0.1:{self.shop_port}"

    @property
    def nginx_log(self) -> Path:
        """One line per request: the instance (upstream) nginx sent it to."""
        return self.directory / "upstreams.log"

    def start(self) -> LocalCluster:
        """Start Redis nodes, form the cluster, then the shop, the rooms and nginx."""
        for port in self.redis_ports:
            self._start_redis(port)
        self._form_cluster()
        python = [sys.executable, "-m", "waitingroom.cli"]
        self._spawn("shop", [*python, "demo-shop", "--port", str(self.shop_port),
                             "--capacity", str(self.capacity), "--session-idle-seconds", "29"])
        for index, _ in enumerate(self.room_ports):
            self.start_room(index)
        self._start_nginx()
        self._wait_for(self.url + "/_wr/health")
        return self

    def start_room(self, index: int) -> None:
        """(Re)start waiting-room instance ``index``."""
        port = self.room_ports[index]
        env = {"WAITINGROOM_SECRET": self.secret,
               "WAITINGROOM_ADMIN_TOKEN": f"ops:{self.admin_token}",
               "WAITINGROOM_REDIS_URL": f"redis+cluster://127.0.0.1:{self.redis_ports[0]}",
               "WAITINGROOM_ORIGIN": self.shop_url,
               "WAITINGROOM_CAPACITY": str(self.capacity),
               "WAITINGROOM_GATED_PATHS": "/checkout*",
               "WAITINGROOM_SESSION_IDLE_SECONDS": "30",
               "WAITINGROOM_FORWARDED_ALLOW_IPS": "127.0.0.1",
               "WAITINGROOM_CAPTURE_SPOOL_DIR": str(self.directory / f"spool-{index}")}
        self._spawn(f"room-{index}", [sys.executable, "-m", "waitingroom.cli", "serve",
                                      "--port", str(port)], env)
        self._wait_for(f"http://127.0.0.1:{port}/_wr/health")

    def kill(self, name: str) -> None:
        """``kill -9`` one process: ``room-N``, ``redis-PORT``, ``shop`` or ``nginx``."""
        process = self.processes.pop(name)
        process.kill()
        process.wait(timeout=10)

    def master_of(self, key: str) -> int:
        """The port of the master node holding ``key`` now."""
        for port in self.redis_ports:
            if f"redis-{port}" not in self.processes:
                continue
            with redis.Redis(port=port) as node:
                slot = node.cluster("keyslot", key)
                for start, end, master, *_ in node.cluster("slots"):
                    if start <= slot <= end:
                        return int(master[1])
        raise RuntimeError("no live node knows the cluster")

    def wait_for_failover(self, key: str, old_master: int, timeout: float = 30) -> int:
        """Until another node is master for ``key`` and every live node reports the
        cluster ``ok``; returns the new master's port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            master = self.master_of(key)
            if master != old_master and all(
                    _cluster_state(port) == "ok" for port in self.redis_ports
                    if f"redis-{port}" in self.processes):
                return master
            time.sleep(0.1)
        raise RuntimeError("no failover")

    def stop(self) -> None:
        """Stop every process (TERM, then KILL) and delete the working folder."""
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- parts ---------------------------------------------------------------------

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with (self.directory / f"{name}.log").open("wb") as log:  # the child keeps its copy
            self.processes[name] = subprocess.Popen(  # noqa: S603 (our own commands)
                command, env={**os.environ, **(env or {})}, stdout=log, stderr=log,
                cwd=self.directory)

    def _start_redis(self, port: int) -> None:
        folder = self.directory / f"redis-{port}"
        folder.mkdir()
        self._spawn(f"redis-{port}", [
            find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(folder), "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_ports[port]),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--repl-diskless-sync-delay", "0"])
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_connect_timeout=0.5) as node:
                    node.ping()
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _form_cluster(self) -> None:
        masters = self.redis_ports[:self.masters]
        nodes = [redis.Redis(port=port) for port in self.redis_ports]
        try:
            share = SLOTS // self.masters
            for index, node in enumerate(nodes[:self.masters]):
                last = SLOTS - 1 if index == self.masters - 1 else (index + 1) * share - 1
                node.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
            for port in self.redis_ports[1:]:
                nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port,
                                         self.bus_ports[port])
            self._until(lambda: all(
                n.execute_command("CLUSTER", "NODES").count(b"\n") >= len(nodes)
                for n in nodes), "the nodes to meet")
            for index, node in enumerate(nodes[self.masters:]):
                master_id = nodes[index].execute_command("CLUSTER", "MYID")
                self._until(lambda n=node, m=master_id: _knows(n, m), "replicas to see masters")
                node.execute_command("CLUSTER", "REPLICATE", master_id)
            self._until(lambda: all(n.cluster("info")["cluster_state"] == "ok" for n in nodes),
                        "the cluster to be ok")
            # A replica that never synced holds nothing to fail over with.
            self._until(lambda: all(n.info("replication").get("master_link_status") == "up"
                                    for n in nodes[self.masters:]), "replicas to sync")
            print(f"redis cluster: masters {masters}, replicas "
                  f"{self.redis_ports[self.masters:]}")
        finally:
            for node in nodes:
                node.close()

    def _start_nginx(self) -> None:
        upstreams = "\n".join(f"    server 127.0.0.1:{port} max_fails=0;"
                              for port in self.room_ports)
        folder = self.directory
        (folder / "nginx.conf").write_text(f"""
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{}}
http {{
  client_body_temp_path {folder};
  proxy_temp_path {folder};
  log_format upstream '$upstream_addr';
  access_log {self.nginx_log} upstream;
  upstream waitingroom {{
{upstreams}
    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{self.nginx_port};
    location / {{
      proxy_pass http://waitingroom;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream error timeout http_502;
      proxy_buffering off;
    }}
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self._spawn("nginx", [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"),
                              "-g", "daemon off;"])

    @staticmethod
    def _wait_for(url: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become healthy")
            time.sleep(0.05)

    @staticmethod
    def _until(check: object, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)


def _free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 that nothing listens on now (all held
    open until all are chosen)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _cluster_state(port: int) -> str:
    with redis.Redis(port=port) as node:
        return str(node.cluster("info")["cluster_state"])


def _knows(node: redis.Redis, node_id: bytes) -> bool:
    return node_id in node.execute_command("CLUSTER", "NODES")


def main() -> int:
    """Run the local cluster until Ctrl-C."""
    with LocalCluster() as cluster:
        print(f"waitingroom cluster: open {cluster.url}/  (3 instances behind nginx; shop "
              f"capacity {cluster.capacity}; admin token in WAITINGROOM_ADMIN_TOKEN below)\n"
              f"  export WAITINGROOM_ADMIN_TOKEN={cluster.admin_token} "
              f"WAITINGROOM_ADMIN_URL={cluster.url}\n  Ctrl-C stops everything.",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
