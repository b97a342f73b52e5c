"""Captures taken while Redis is unreachable: a local append-only file, fsync'd.

Each process appends to its own file ``<room>.<host>-<pid>.jsonl`` (the host named so
that processes on several machines can share one folder) under an exclusive lock, and
flushes and fsyncs before the visitor is shown a reference. A drain takes every file
of the room it can lock (a dead process's too), stores each record in Redis
(idempotent by reference), then empties the file.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger("waitingroom.spool")
_WRITER = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) + f"-{os.getpid()}"
"""This process, as its spool files name it: host and process id, with no dot."""


class Spool:
    """The spool of one room in ``directory``."""

    def __init__(self, directory: str | Path, room: str) -> None:
        self.directory = Path(directory)
        self.room = room
        self.path = self.directory / f"{room}.{_WRITER}.jsonl"

    async def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` and fsync it; raises OSError if the disk refuses."""
        await asyncio.to_thread(self._append, json.dumps(record, separators=(",", ":")))

    def _append(self, line: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        while True:
            file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
            fcntl.flock(file, fcntl.LOCK_EX)
            try:  # a drainer may have emptied and unlinked it while we waited for the lock
                if os.fstat(file.fileno()).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            file.close()
        with file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())
        if created:  # the new file's directory entry must survive a crash too
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def has_records(self) -> bool:
        """True if any spool file of this room holds records."""
        return any(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        """This room's spool files (of every writer), and no other room's: the glob
        alone would take ``<room>.interest.<writer>.jsonl`` for one of ``<room>``'s."""
        if not self.directory.is_dir():
            return []
        return sorted(path for path in self.directory.glob(f"{self.room}.*.jsonl")
                      if "." not in path.name[len(self.room) + 1:-len(".jsonl")])

    async def drain(self, store: Callable[[dict[str, Any]], Awaitable[None]]) -> int:
        """Store every spooled record with ``store``; return how many were drained.

        A file is emptied only after all its records were stored, so a failure
        part-way leaves it to the next drain (``store`` must be idempotent).
        """
        drained = 0
        for path in self._files():
            # Spool files are small and drains rare: plain file calls, opened off-loop.
            file = await asyncio.to_thread(open, path, "r+", encoding="utf-8")
            try:
                try:
                    fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being written to or drained right now
                for line in file.read().splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        # A write torn by a crash: its visitor was never shown a reference.
                        logger.warning("skipping a torn spool line in %s", path)
                        continue
                    await store(record)
                    drained += 1
                file.truncate(0)
                file.flush()
                os.fsync(file.fileno())
            finally:
                file.close()
            if path != self.path:
                path.unlink(missing_ok=True)
        return drained
