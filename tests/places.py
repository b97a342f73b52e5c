"""Test helpers for the engine's line: visitors who keep their arrival numbers (as the
gate's tickets do), the line as Redis holds it, and a room clock tests can move."""

from __future__ import annotations

from collections.abc import Iterable

from waitingroom.engine import BITMAP_CHUNK, LINE_BUCKET, Engine, Visit, room_keys

T0_MS = 1_900_000_000_000
"""Where a test's simulated room clock starts."""


class Visitors:
    """Visitors of one room, each giving back the arrival number of its place."""

    def __init__(self, engine: Engine, room: str) -> None:
        self.engine = engine
        self.room = room
        self.numbers: dict[str, int] = {}

    async def visit(self, visitor: str, *, join: bool = True) -> Visit:
        """``Engine.visit`` with the visitor's place, remembering a new one."""
        visit = await self.engine.visit(self.room, visitor, join=join,
                                        number=self.numbers.get(visitor, 0))
        if visit.number:
            self.numbers[visitor] = visit.number
        return visit


class RoomClock:
    """Runs a room on simulated time (the planner's ``clock``), moved by the test."""

    def __init__(self, engine: Engine, room: str, start_ms: int = T0_MS) -> None:
        self.engine = engine
        self.room = room
        self.now_ms = start_ms

    async def start(self) -> RoomClock:
        await self.engine.rooms.set_clock(self.room, self.now_ms)
        return self

    async def advance(self, seconds: float) -> None:
        self.now_ms += round(seconds * 1000)
        await self.engine.rooms.set_clock(self.room, self.now_ms)


async def pass_time(clock: RoomClock, visitors: Visitors, seconds: float,
                    staying: Iterable[str], *, step: float = 15.0) -> None:
    """Let ``seconds`` go by while the ``staying`` visitors keep asking every ``step``
    seconds (a quarter of a 60 s grace), as the queue page does; everyone else in line
    is silent."""
    staying = list(staying)
    while seconds > 0:
        await clock.advance(min(step, seconds))
        seconds -= step
        for visitor in staying:
            await visitors.visit(visitor, join=False)


async def line_ids(engine: Engine, room: str) -> list[str]:
    """The ids in the line, in order, as Redis holds them."""
    keys = room_keys(room)
    head = int(await engine.redis.hget(keys.stats, "head") or 0)
    end = int(await engine.redis.get(keys.seq) or 0)
    ids = []
    for n in range(head + 1, end + 1):
        if not await engine.redis.getbit(f"{keys.left}:{n // BITMAP_CHUNK}", n % BITMAP_CHUNK):
            visitor = await engine.redis.hget(f"{keys.line}:{n // LINE_BUCKET}", str(n))
            if visitor is not None:
                ids.append(visitor.decode())
    return ids
