"""Coalesce calls made in the same event-loop turn into one Redis call per room.

Under load many requests ask Redis the same kind of question at once; answering them
with one script call amortises the round trip (and redis-py's per-call cost) over all
of them. A lone caller waits for nothing: its batch is sent at the end of the turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Arg = TypeVar("Arg")
Result = TypeVar("Result")

MAX_BATCH = 64


class Batcher(Generic[Arg, Result]):
    """Calls ``run(room, args)`` once per room for everything submitted in one turn.

    ``run`` must return one result per argument, in order. If it raises, every
    caller in that batch gets the exception.
    """

    def __init__(self, run: Callable[[str, Sequence[Arg]], Awaitable[Sequence[Result]]]) -> None:
        self._run = run
        self._pending: dict[str, list[tuple[Arg, asyncio.Future[Result]]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, room: str, arg: Arg) -> asyncio.Future[Result]:
        """Queue ``arg`` for ``room``; the future resolves with its result."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.setdefault(room, []).append((arg, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for room, calls in pending.items():
            for start in range(0, len(calls), MAX_BATCH):
                task = asyncio.ensure_future(self._send(room, calls[start:start + MAX_BATCH]))
                self._tasks.add(task)  # keep a reference until done
                task.add_done_callback(self._tasks.discard)

    async def _send(self, room: str, calls: list[tuple[Arg, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._run(room, [arg for arg, _ in calls])
        except Exception as exc:  # handed to every waiting caller, not swallowed
            for _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(calls, results, strict=True):
            if not future.done():
                future.set_result(result)
