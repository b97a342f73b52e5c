"""Which room, if any, gates a request path (glob patterns)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

RESERVED_PREFIX = "/_wr/"


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


class Router:
    """Glob rules (``/checkout*``, ``/static/*``) deciding which room gates a path.

    Open patterns win over everything. Then rooms created at run time, oldest first;
    then the configured room's gated patterns, where none means every other path.
    The reserved prefix ``/_wr/`` belongs to the waiting room and is never routed.
    """

    def __init__(
        self, room: str, gated: Sequence[str] = (), open_: Sequence[str] = (),
        rooms: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> None:
        self._room = room
        self._gated_source = tuple(gated)
        self._open_source = tuple(open_)
        self._gated = _compile(gated)
        self._open = _compile(open_)
        self._rooms = [(name, _compile(paths)) for name, paths in rooms]

    def with_rooms(self, rooms: Sequence[tuple[str, Sequence[str]]]) -> Router:
        """The same rules with ``rooms`` (name, patterns) as the run-time rooms."""
        return Router(self._room, self._gated_source, self._open_source, rooms)

    def is_open(self, path: str) -> bool:
        """True if ``path`` always passes (an open pattern)."""
        return self._open is not None and self._open.match(path) is not None

    def route(self, path: str) -> str | None:
        """The name of the room gating ``path``, or None if it passes ungated."""
        if self.is_open(path):
            return None
        for name, paths in self._rooms:
            if paths is not None and paths.match(path):
                return name
        if self._gated is None or self._gated.match(path):
            return self._room
        return None
