"""What the origin says about stock on its answers to admitted shoppers:
``X-WaitingRoom-Sold: 2`` (units sold by this answer) and ``X-WaitingRoom-Stock:
4812`` (the units left, as the shop counts them; last writer wins)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from waitingroom.engine import Engine, RoomChange, RoomConfig, StockFigures

logger = logging.getLogger("waitingroom")

SOLD_HEADER = b"x-waitingroom-sold"
STOCK_HEADER = b"x-waitingroom-stock"
_MAX_UNITS = 1_000_000_000
_AUDIT_EVERY_SECONDS = 10.0
"""A stock the origin reports on every answer is audited at most this often (a sell-out
and a restock always)."""


def units(value: bytes) -> int | None:
    """A header's whole number of units (0 to a billion), or None if it is not one."""
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if number <= _MAX_UNITS else None


class Sales:
    """One room's stock as the origin reports it, counted in Redis."""

    def __init__(self, engine: Engine, room: str,
                 on_change: Callable[[], Awaitable[None]]) -> None:
        self.engine = engine
        self.room = room
        self._on_change = on_change
        """Called when the stock runs out or comes back (the room reads its config)."""
        self._audited: tuple[int | None, float] = (None, 0.0)
        self.figures: StockFigures | None = None
        """The room's stock and sales as last read (every tick while it counts stock)."""

    async def read(self, config: RoomConfig) -> None:
        """Read the room's stock and sales per session, if it counts stock."""
        self.figures = (await self.engine.stock.figures(self.room, config.sales_per_session)
                        if config.stock is not None else None)

    async def heard(self, sold: bytes | None, stock: bytes | None,
                    known_stock: int | None) -> None:
        """Count what one answer said. ``known_stock``: the stock this process last
        read. A header that is not a number is logged and ignored; a Redis error
        loses this report (logged), never the answer."""
        try:
            if stock is not None:
                await self._report_stock(stock, known_stock)
            if sold is not None:
                count = units(sold)
                if count is None:
                    logger.warning("origin sent %s: %r, not a number of units; ignored",
                                   SOLD_HEADER.decode(), sold[:40])
                elif count and await self.engine.stock.sold(self.room, count) == 0:
                    await self._on_change()
        except RedisError as exc:
            logger.warning("could not count the origin's stock report: %s", exc)

    async def _report_stock(self, value: bytes, known: int | None) -> None:
        left = units(value)
        if left is None:
            logger.warning("origin sent %s: %r, not a number of units; ignored",
                           STOCK_HEADER.decode(), value[:40])
            return
        if left == known:
            return
        last, at = self._audited
        turned = (left == 0) != (known == 0)
        audited = turned or (left != last and time.monotonic() - at >= _AUDIT_EVERY_SECONDS)
        if audited:
            self._audited = (left, time.monotonic())
        await self.engine.rooms.change(self.room, "origin", "stock", RoomChange(stock=left),
                                       audited=audited)
        if turned:
            await self._on_change()
