"""A process's copy of a room's line: waiting visitors' polls answered without Redis.

Twice a second each process calls :meth:`Engine.watch` for a room it serves. That
call hands in the arrival numbers of the waiters this process heard from (which keeps
their places), does the room's upkeep and returns the line as a few integers and a
bitmap of who walked away: a :class:`LineView`. Until the next call, a waiter whose
ticket names a place this view shows in line gets its exact position from the view.
Anything else (a place the view does not show, admissions, a stale view) is asked of
Redis as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate

from redis.exceptions import RedisError

logger = logging.getLogger("waitingroom")

WATCH_SECONDS = 0.5
"""How often a process looks at a room's line (while it answers polls for it)."""
STALE_SECONDS = 2.0
"""A view older than this answers nothing: Redis is asked instead."""
IDLE_SECONDS = 30.0
"""A process stops looking at a room whose line is empty once nobody has asked it
about the room for this long (the look starts again with the next question)."""
HEARD_KEPT = 1_000_000
"""Most arrival numbers a process keeps to hand in while it cannot reach Redis."""
_POPCOUNT = bytes(bin(b).count("1") for b in range(256))


@dataclass(frozen=True, slots=True)
class LineView:
    """The line at one moment: arrival numbers ``head + 1 .. end`` less those whose
    bit is set in ``left``, behind ``ahead`` visitors in lanes served first."""

    head: int
    end: int
    ahead: int
    admitted_total: int
    server_ms: int
    first_byte: int
    """``left`` holds the bitmap's bytes from this one on (bit n: byte n // 8, high
    bit first, as Redis numbers them)."""
    left: bytes
    renamed: frozenset[int]
    """Places that moved to another device: only Redis knows whose they are now."""
    _walked_before: list[int] = field(init=False, repr=False, compare=False)
    _base: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Walk-aways in the bytes before each byte of ``left``: a position is then a
        # lookup and one partial byte, however long the line.
        object.__setattr__(self, "_walked_before",
                           list(accumulate((_POPCOUNT[b] for b in self.left), initial=0)))
        # position = number - _base - walk-aways below number
        object.__setattr__(self, "_base", self.head - self.ahead - self._walked(self.head + 1))

    def position(self, number: int) -> int | None:
        """The 1-based position of the waiter holding ``number``, or None if this view
        cannot say (not in line by it, or renamed)."""
        if not self.head < number <= self.end or number in self.renamed:
            return None
        walked = self._walked(number)
        if self._walked(number + 1) != walked:  # it walked away
            return None
        return number - self._base - walked

    def through(self, number: int) -> int:
        """How many are served before the waiter after ``number``: the lanes ahead and
        those in line with numbers up to ``number``. It falls as the line moves, by
        admissions and by walk-aways ahead alike."""
        if number <= self.head:
            return self.ahead
        number = min(number, self.end)
        return number - self._base - self._walked(number + 1)

    def _walked(self, number: int) -> int:
        """Walk-aways with arrival numbers below ``number`` (counted from
        ``first_byte``; ``number`` at least ``8 * first_byte``)."""
        index, bit = divmod(number, 8)
        index -= self.first_byte
        if index >= len(self.left):  # past the bitmap's end, nobody left
            return self._walked_before[-1]
        return self._walked_before[index] + _POPCOUNT[self.left[index] & (0xFF00 >> bit) & 0xFF]


class LineWatch:
    """One room's line as this process last saw it, and the waiters it has heard from
    since. It looks while asked for positions, or told to :meth:`keep_looking` (the
    looks do the room's upkeep: they let the next in line in as sessions expire), and
    stops once the line is empty and nobody asked for :data:`IDLE_SECONDS`;
    ``on_look`` gets every view."""

    def __init__(self, watch: Callable[[str, Iterable[int], int], Awaitable[LineView]],
                 room: str, on_look: Callable[[LineView], None] | None = None) -> None:
        self._watch = watch
        self.room = room
        self._on_look = on_look
        self.view: LineView | None = None
        self._seen_at = 0.0
        self._asked_at = 0.0
        self._heard: set[int] = set()
        self._heard_since = 0
        self._moved_here: set[int] = set()  # renamed by this process since the last look
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def position(self, number: int) -> int | None:
        """The position of the waiter holding ``number`` if a fresh view shows it in
        line (and it is then counted as heard from); else None: ask Redis."""
        self.keep_looking()
        view = self.view
        if view is None or time.monotonic() - self._seen_at > STALE_SECONDS:
            # Redis may be out of reach from here alone: the waiter still asked, and is
            # counted as heard from once the looks succeed again.
            if len(self._heard) < HEARD_KEPT:
                self._heard.add(number)
            return None
        position = None if number in self._moved_here else view.position(number)
        if position is not None:
            self._heard.add(number)
        return position

    def keep_looking(self) -> None:
        """Look (again) for at least :data:`IDLE_SECONDS` more."""
        self._asked_at = time.monotonic()
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run())

    def stale(self) -> None:
        """Something here may have moved the line (a session ended, so somebody was
        let in): ask Redis until the next look, which is now."""
        self._seen_at = 0.0
        self._wake.set()

    def moved(self, number: int) -> None:
        """The place ``number`` moved to another device here: ask Redis about it."""
        self._moved_here.add(number)

    async def look(self) -> LineView:
        """Look at the line now (handing in who was heard from)."""
        # Who was heard from since the last swap, and the room time they were all heard
        # after: the view's when that swap was made (a hide before it is undone by them,
        # one after it may be later than a poll, so it stands: see heard_all).
        heard, since = self._heard, self._heard_since
        self._heard, self._heard_since = set(), self.view.server_ms if self.view else 0
        try:
            view = await self._watch(self.room, heard, since)
        except BaseException:
            self._heard |= heard  # handed in next time
            self._heard_since = min(self._heard_since, since)
            raise
        self.view, self._seen_at = view, time.monotonic()
        self._moved_here = {n for n in self._moved_here if n > view.head}
        if self._on_look is not None:
            self._on_look(view)
        return view

    async def _run(self) -> None:
        # Ended by ``_closed``, not only by a cancel: Python 3.11's wait_for swallows a
        # cancel that lands as the wake is set, and the loop would then look for ever.
        while not self._closed:
            try:
                await self.look()
            except RedisError as exc:
                logger.warning("could not look at room %s's line: %s", self.room, exc)
            except Exception:  # the view goes stale and Redis answers instead
                logger.exception("looking at room %s's line failed", self.room)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), WATCH_SECONDS)
            self._wake.clear()
            view = self.view
            if (time.monotonic() - self._asked_at > IDLE_SECONDS and not self._heard
                    and view is not None and view.end <= view.head and not view.ahead):
                self._task = None  # no await since the check: no question slips in
                return

    async def aclose(self) -> None:
        """Stop looking, for good (the waiters heard from since the last look are
        handed in)."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        if self._heard:
            try:
                await self.look()
            except RedisError as exc:
                logger.warning("could not hand in room %s's heard waiters: %s", self.room, exc)
