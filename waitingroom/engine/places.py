"""Places held in other ways than waiting in line: invites (``lua/invite.lua``),
places kept while the visitor is away to be notified (``lua/away.lua``), places
moved to another device (``lua/resume.lua``), and once-only tokens."""

from __future__ import annotations

import json
from typing import NamedTuple, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from waitingroom.engine.keys import register_script, room_keys, room_ms, visitor_key
from waitingroom.engine.visits import Timing, Visit, VisitState


class NoticesDue(NamedTuple):
    """Visitors away until their turn (asked to be notified)."""

    away: int
    """How many are away."""
    admitted: list[str]
    """Those of them admitted: to be told now."""


class PlaceStore:
    """Every room's invites, notify-me requests and moved places (``Engine.places``)."""

    def __init__(self, redis: Redis | RedisCluster, timing: Timing) -> None:
        self.redis = redis
        self._timing = timing
        self._invite = register_script(redis, "invite")
        self._resume = register_script(redis, "resume")
        self._away = register_script(redis, "away")

    async def create_invite(self, room: str, invite_id: str, *, uses: int,
                            expires_in_seconds: int) -> None:
        """Allow ``uses`` redemptions of invite ``invite_id`` for the next while."""
        await self.redis.set(visitor_key(room, "invite", invite_id), uses,
                             ex=expires_in_seconds)

    async def redeem_invite(self, room: str, invite_id: str, visitor_id: str, *,
                            number: int = 0) -> Visit | None:
        """Use an invite for ``visitor_id`` (who may hold place ``number`` in line, given
        up): to the front of the line (or straight in when a slot is free). None if the
        invite is used up, expired or unknown."""
        timing = self._timing
        state, position, admitted, now = await self._invite(
            (*room_keys(room).core, visitor_key(room, "invite", invite_id)),
            (visitor_id, number, timing.grace_ms, timing.idle_ms, timing.max_ms))
        if state < 0:
            return None
        return Visit(VisitState(state), position, admitted, now)

    async def invite_uses_left(self, room: str, invite_id: str) -> int:
        """Redemptions left (0 once used up or expired)."""
        return int(await self.redis.get(visitor_key(room, "invite", invite_id)) or 0)

    async def spend(self, room: str, token_id: str, *, ttl_seconds: int) -> bool:
        """Mark a once-only token (a proof-of-work challenge, a claim link) as used,
        remembered for as long as it could be presented; False if it already was."""
        return bool(await self.redis.set(visitor_key(room, "spent", token_id), 1, nx=True,
                                         ex=ttl_seconds))

    async def ask_to_notify(self, room: str, visitor_id: str, record: dict[str, str], *,
                            number: int = 0, away_seconds: int) -> bool:
        """Remember how to tell ``visitor_id`` (holding place ``number``, if in line) it
        is their turn, and keep their place while they are away (up to
        ``away_seconds``). False if they hold no place."""
        keys = room_keys(room)
        return bool(await self._away(
            (*keys.core, keys.notify),
            (visitor_id, number, away_seconds * 1000, json.dumps(record))))

    async def notices_due(self, room: str) -> NoticesDue:
        """How many visitors are away waiting to be told, and which of them have been
        admitted."""
        keys = room_keys(room)
        waiting = cast(list[bytes], await self.redis.hkeys(keys.notify))
        if not waiting:
            return NoticesDue(0, [])
        async with self.redis.pipeline(transaction=False) as pipe:
            for visitor_id in waiting:
                pipe.zscore(keys.active, visitor_id)
            scores = await pipe.execute()
        return NoticesDue(len(waiting), [v.decode() for v, score
                                         in zip(waiting, scores, strict=True) if score])

    async def take_notice(self, room: str, visitor_id: str, *,
                          claim_seconds: int) -> dict[str, str] | None:
        """Take an admitted visitor's notify request (once, whichever process asks
        first) and hold their slot ``claim_seconds`` for them to come back."""
        keys = room_keys(room)
        now = await room_ms(self.redis, room)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(keys.notify, visitor_id)
            pipe.hdel(keys.notify, visitor_id)
            pipe.zrem(f"{keys.notify}:until", visitor_id)
            pipe.zadd(keys.active, {visitor_id: now + claim_seconds * 1000}, xx=True, gt=True)
            record, taken, _, _ = await pipe.execute()
        return json.loads(record) if taken else None

    async def resume(self, room: str, old_id: str, new_id: str, *, number: int = 0,
                     marker_seconds: int) -> Visit | None:
        """Move ``old_id``'s place (arrival ``number`` in line, 0 in a lane) to
        ``new_id`` (another device), keeping its position; ``old_id`` then answers
        :attr:`VisitState.MOVED` for ``marker_seconds``. None if ``old_id`` holds no
        place."""
        position, kept, admitted, now = await self._resume(
            (*room_keys(room).core, visitor_key(room, "moved", old_id)),
            (old_id, number, new_id, self._timing.grace_ms, marker_seconds))
        if position < 0:
            return None
        state = VisitState.PREQUEUE if position == 0 else VisitState.WAITING
        return Visit(state, position, admitted, now, kept)
