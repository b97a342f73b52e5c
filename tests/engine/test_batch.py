"""The batcher that coalesces concurrent Redis calls (pure asyncio, no Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from waitingroom.engine.batch import MAX_BATCH, Batcher


async def test_one_call_per_room_per_turn_with_results_in_order() -> None:
    calls: list[tuple[str, list[int]]] = []

    async def run(room: str, args: Sequence[int]) -> list[int]:
        calls.append((room, list(args)))
        return [a * 10 for a in args]

    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit("a" if i % 2 else "b", i)
                                     for i in range(6)))
    assert results == [0, 10, 20, 30, 40, 50]
    assert sorted(calls) == [("a", [1, 3, 5]), ("b", [0, 2, 4])]
    assert await batcher.submit("a", 7) == 70  # a lone caller is served too
    assert len(calls) == 3


async def test_big_bursts_are_split() -> None:
    sizes: list[int] = []

    async def run(room: str, args: Sequence[int]) -> list[int]:
        sizes.append(len(args))
        return list(args)

    batcher: Batcher[int, int] = Batcher(run)
    await asyncio.gather(*(batcher.submit("r", i) for i in range(MAX_BATCH + 5)))
    assert sizes == [MAX_BATCH, 5]


async def test_a_failure_reaches_every_caller_in_the_batch() -> None:
    async def run(room: str, args: Sequence[int]) -> list[int]:
        raise ConnectionError("redis went away")

    batcher: Batcher[int, int] = Batcher(run)
    results = await asyncio.gather(*(batcher.submit("r", i) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    with pytest.raises(ConnectionError):
        await batcher.submit("r", 1)
