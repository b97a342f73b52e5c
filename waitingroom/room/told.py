"""What a waiter was last told, by whichever process: the ``wr_seen_<room>`` cookie.

Each process answers waiters from its own copy of the line, each copy of its own
moment; a visitor may be told something newer by another process. The cookie records
the place's arrival number, the room time of the answer and the position told (0:
let in), as ``<number>.<room ms>.<position>``. It is not signed: all it can change is
what its own holder is told, and whether the holder's requests are asked of Redis
(which any stale ticket causes too); the place itself is the ticket's, which is.
"""

from __future__ import annotations

import re

_TOLD = re.compile(r"([0-9]{1,15})\.([0-9]{1,15})\.([0-9]{1,9})")


def told_value(number: int, server_ms: int, position: int) -> str:
    """The cookie's value: place ``number`` was told ``position`` (0: let in) as the
    line stood at room time ``server_ms``."""
    return f"{number}.{server_ms}.{position}"


def read_told(value: str | None, number: int) -> tuple[int, int] | None:
    """``(server_ms, position)`` the holder of place ``number`` was told; None if the
    value says nothing about that place (none, another place, not ours)."""
    match = _TOLD.fullmatch(value or "")
    if match is None or int(match[1]) != number:
        return None
    return int(match[2]), int(match[3])
