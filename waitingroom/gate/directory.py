"""The rooms one process gates: the configured room plus those ops create at run time.

Rooms created through the admin API live in a Redis registry; each process reads it
at most a second after it last did (in the background, never holding up a request)
and builds a gate for every new room, so a created or revoked room takes effect in
every process within a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from redis.exceptions import RedisError

from waitingroom.engine import Engine, RoomDefinition
from waitingroom.gate.gate import RoomGate
from waitingroom.web.paths import Router

logger = logging.getLogger("waitingroom")
_REFRESH_SECONDS = 1.0


class RoomDirectory:
    """Finds the gate for a path or a room name, keeping up with the registry."""

    def __init__(
        self, *, default: RoomGate, default_paths: tuple[str, ...], router: Router,
        engine: Engine, make_gate: Callable[[RoomDefinition], RoomGate],
    ) -> None:
        self.default = default
        self._default_paths = default_paths
        self._base_router = router
        self._router = router
        self._engine = engine
        self._make_gate = make_gate
        self._created: dict[str, tuple[RoomDefinition, RoomGate]] = {}
        self._expires = 0.0
        self._loaded = False
        self._refresh: asyncio.Task[None] | None = None

    async def for_path(self, path: str) -> RoomGate | None:
        """The gate of the room gating ``path``; None if it passes ungated."""
        if self._loaded:
            self._refresh_if_stale()
        elif not self._router.is_open(path):  # open paths never wait for Redis
            await self.reload()
        name = self._router.route(path)
        if name is None:
            return None
        return self.default if name == self.default.room.name else self._created[name][1]

    async def named(self, name: str) -> RoomGate | None:
        """The gate of room ``name``, if there is such a room."""
        if name == self.default.room.name:
            return self.default
        await self._current()
        entry = self._created.get(name)
        return entry[1] if entry else None

    def paths_of(self, name: str) -> tuple[str, ...]:
        """The path patterns room ``name`` gates (empty: every path not open or taken
        by another room, for the configured room without gated paths)."""
        if name == self.default.room.name:
            return self._default_paths
        entry = self._created.get(name)
        return entry[0].paths if entry else ()

    async def all(self) -> list[RoomGate]:
        """Every room's gate: the configured room first, then the others, oldest first."""
        await self._current()
        return [self.default, *(gate for _, gate in self._created.values())]

    async def _current(self) -> None:
        # The first look waits for the registry (a path of a created room must not
        # slip through ungated); later ones refresh in the background.
        if self._loaded:
            self._refresh_if_stale()
        else:
            await self.reload()

    def _refresh_if_stale(self) -> None:
        if time.monotonic() > self._expires and self._refresh is None:
            self._refresh = asyncio.create_task(self._reload_in_background())

    async def _reload_in_background(self) -> None:
        try:
            await self.reload()
        except RedisError as exc:
            logger.warning("could not read the room registry; keeping the last one: %s", exc)
        finally:
            self._refresh = None

    async def reload(self) -> None:
        """Read the registry now: build gates for new rooms, close revoked ones."""
        definitions = await self._engine.rooms.registered()
        current = {d.name: d for d in definitions if d.name != self.default.room.name}
        for name, (definition, gate) in list(self._created.items()):
            if current.get(name) != definition:  # revoked, or revoked and created anew
                del self._created[name]
                await gate.aclose()
        for name, definition in current.items():
            if name not in self._created:
                self._created[name] = (definition, self._make_gate(definition))
        self._router = self._base_router.with_rooms(
            [(d.name, d.paths) for d, _ in self._created.values()])
        self._loaded = True
        self._expires = time.monotonic() + _REFRESH_SECONDS

    async def aclose(self) -> None:
        """Stop every room's background work."""
        if self._refresh is not None:
            await self._refresh
        for gate in [self.default, *(gate for _, gate in self._created.values())]:
            await gate.aclose()
