"""Admission pushed to the waiter: the moment Redis lets a visitor in, the process
holding its event stream tells it.

Each room's ``fill`` (``lua/_admit.lua``) announces whom it let in on the channel
``wr:{room}:admitted`` (``PUBLISH``: the line's new head and the visitors' ids). Each
process listens to every room on one connection (:class:`Announcements`, kept by the
engine), and each room's :class:`Doorbell` wakes the event streams waiting for those
visitors. If the announcement is missed (Redis out of reach, a failover), the
process's next look at the line wakes every stream whose place the head has passed,
within half a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Iterator

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

logger = logging.getLogger("waitingroom")

_LISTEN_AGAIN_SECONDS = 0.5
"""After the subscription broke: how long before subscribing again."""


def announcements(room: str) -> str:
    """The channel on which ``room``'s admissions are announced (``ANNOUNCE`` in
    ``_admit.lua``)."""
    return f"wr:{{{room}}}:admitted"


_EVERY_ROOM = "wr:{*}:admitted"
"""The pattern of every room's announcements (one subscription per process, so many
rooms cost one connection, not one each)."""


class Announcements:
    """This process's one subscription to every room's admissions, handed to the
    room's :class:`Doorbell`."""

    def __init__(self, redis: Redis | RedisCluster) -> None:
        self._redis = redis
        self._doorbells: dict[bytes, Doorbell] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.listening = asyncio.Event()
        """Set while subscribed."""

    def doorbell(self, room: str) -> Doorbell:
        """The doorbell of ``room`` in this process."""
        channel = announcements(room).encode()
        if channel not in self._doorbells:
            self._doorbells[channel] = Doorbell(self, room)
        return self._doorbells[channel]

    def listen(self) -> None:
        """Subscribe, if not yet done (and again whenever the subscription breaks)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # Ended by ``_closed`` as well as by a cancel, which a timed read may swallow.
        while not self._closed:
            try:
                await self._subscribe()
            except (RedisError, OSError) as exc:
                logger.warning("not hearing admissions: %s", exc)
            await asyncio.sleep(_LISTEN_AGAIN_SECONDS)

    async def _subscribe(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(_EVERY_ROOM)
            self.listening.set()
            while not self._closed:
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message["type"] != "pmessage":
                    continue
                doorbell = self._doorbells.get(message["channel"])
                if doorbell is not None:
                    head, *visitor_ids = message["data"].split()
                    doorbell.admitted(int(head), [v.decode() for v in visitor_ids])
        finally:
            self.listening.clear()
            await pubsub.aclose()

    async def aclose(self) -> None:
        """Stop listening, for good."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})


class Doorbell:
    """The event streams of one room waiting in this process, woken when their
    visitor is let in (or its place at the head passed)."""

    def __init__(self, announcements: Announcements, room: str) -> None:
        self._announcements = announcements
        self._ringing: dict[str, set[asyncio.Event]] = {}
        self._by_number: list[tuple[int, str]] = []  # a heap: the next to pass first
        self.listening = announcements.listening
        """Set while this process hears the room's announcements."""
        self.head = 0
        """Every arrival number up to this has left the line (as last announced)."""

    @contextlib.contextmanager
    def waiting(self, visitor_id: str, number: int) -> Iterator[asyncio.Event]:
        """While in the block, the event is set when ``visitor_id`` (holding place
        ``number`` in line, 0 in a lane) is let in; the stream clears it."""
        self._announcements.listen()
        bell = asyncio.Event()
        self._ringing.setdefault(visitor_id, set()).add(bell)
        if number:
            heapq.heappush(self._by_number, (number, visitor_id))
        try:
            yield bell
        finally:
            bells = self._ringing.get(visitor_id)
            if bells is not None:
                bells.discard(bell)
                if not bells:
                    del self._ringing[visitor_id]

    def admitted(self, head: int, visitor_ids: list[str]) -> None:
        """Redis let ``visitor_ids`` in and the line's head is at ``head``."""
        for visitor_id in visitor_ids:
            self._ring(visitor_id)
        self.passed(head)

    def passed(self, head: int) -> None:
        """The line's head is at ``head``: every place up to it has left the line."""
        self.head = max(self.head, head)
        by_number = self._by_number
        while by_number and by_number[0][0] <= head:
            self._ring(heapq.heappop(by_number)[1])

    def _ring(self, visitor_id: str) -> None:
        for bell in self._ringing.get(visitor_id, ()):
            bell.set()
