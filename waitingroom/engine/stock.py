"""What a room sells: the units sold (``lua/sell.lua``), the sales per session they come
to, and the details left for a restock. The stock left is set as any live setting is
(:meth:`RoomStore.change`: ops, the timeline, the origin's reports)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from waitingroom.engine.keys import register_script, room_keys

_MEASURED_SESSIONS = 20
"""Ended sessions after which the room's own sales per session replace the prior."""


@dataclass(frozen=True, slots=True)
class StockFigures:
    """A room's stock and what its sessions buy."""

    stock: int | None
    """Units left; None when the room does not count stock."""
    sold: int
    ended_sessions: int
    """Sessions ended (released or expired): each had its chance to buy."""
    sales_per_session: float
    """Units an admitted shopper buys: measured once enough sessions ended, else
    ``prior``, blended in between."""
    active: int
    """Sessions in the shop now: they buy before anyone in line."""


class StockStore:
    """Every room's stock and sales (``Engine.stock``)."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self.redis = redis
        self._sell = register_script(redis, "sell")
        self._take_interest = register_script(redis, "take_interest")

    async def take_interest(self, room: str, count: int = 100) -> list[dict[str, str]]:
        """Up to ``count`` of the details left (``/_wr/interest``) before the last
        restock and not yet told of it, oldest first: each taken by one caller, once.
        Each is the record's fields (``email``, ``phone``, ...)."""
        keys = room_keys(room)
        entries = await self._take_interest((*keys.core, keys.interest), (count,))
        return [json.loads(dict(zip(data[::2], data[1::2], strict=True))[b"fields"])
                for _, data in entries]

    async def sold(self, room: str, units: int) -> int | None:
        """Count ``units`` sold; the stock left (None when the room counts none)."""
        left = int(await self._sell(room_keys(room).core, (units,)))
        return None if left < 0 else left

    async def figures(self, room: str, prior: float) -> StockFigures:
        """The room's stock, sales and sales per session (``prior``, the room's
        ``sales_per_session``, until measured)."""
        keys = room_keys(room)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(keys.config, "stock")
            pipe.hmget(keys.stats, "sold", "released", "expired")
            pipe.zcard(keys.active)
            stock, (sold, released, expired), active = await pipe.execute()
        sold, ended = int(sold or 0), int(released or 0) + int(expired or 0)
        weight = min(ended, _MEASURED_SESSIONS) / _MEASURED_SESSIONS
        measured = sold / ended if ended else prior
        return StockFigures(None if stock is None else int(stock), sold, ended,
                            weight * measured + (1 - weight) * prior, active)
