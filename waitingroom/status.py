"""What a visitor is told: the ``GET /_wr/status`` contract, shared by JSON and HTML."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

State = Literal["arriving", "queued", "admitted", "capture", "paused", "open", "closed",
                "prequeue", "moved", "sold_out", "full", "draw"]

_MIN_POLL_SECONDS = 2
_VISITORS_PER_EXTRA_SECOND = 100
_SOON_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Chance:
    """A waiter's chance of being served before the stock runs out (``likely``,
    ``uncertain`` or ``unlikely``), with the numbers behind it."""

    level: str
    reach: int
    """The place in line the stock is expected to last to."""
    stock: int
    sales_per_session: float

    def as_dict(self) -> dict[str, object]:
        """The ``chance`` field of ``GET /_wr/status``."""
        return {"level": self.level, "reach": self.reach, "stock": self.stock,
                "sales_per_session": self.sales_per_session}


@dataclass(frozen=True, slots=True)
class Status:
    """A visitor's standing in a room."""

    room: str
    state: State
    position: int | None = None
    """1-based place in line while queued or paused; None otherwise."""
    eta_seconds: int | None = None
    """Expected wait from the measured admission rate; None until it is known."""
    message: str | None = None
    """The operator's message, if any."""
    poll_after_seconds: int = _MIN_POLL_SECONDS
    """When to ask again: later the further back, so a crowd does not poll in step."""
    chance: Chance | None = None
    """While the room counts stock: a waiter's chance of being served before it runs
    out (the field is left out otherwise)."""

    def as_dict(self) -> dict[str, object]:
        """The fields of ``GET /_wr/status``, for other JSON answers to build on."""
        fields: dict[str, object] = {
            "room": self.room, "state": self.state, "position": self.position,
            "eta_seconds": self.eta_seconds, "message": self.message,
            "poll_after_seconds": self.poll_after_seconds}
        if self.chance is not None:
            fields["chance"] = self.chance.as_dict()
        return fields

    def to_json(self) -> bytes:
        """The JSON body of ``GET /_wr/status``: the same as ``json.dumps`` of
        :meth:`as_dict` (compact), written out directly because it answers every poll."""
        return (f'{{"room":{_string(self.room)},"state":"{self.state}",'
                f'"position":{_number(self.position)},'
                f'"eta_seconds":{_number(self.eta_seconds)},'
                f'"message":{"null" if self.message is None else _string(self.message)},'
                f'"poll_after_seconds":{self.poll_after_seconds}'
                f'{_chance(self.chance)}}}').encode()


_string = lru_cache(maxsize=1024)(json.dumps)
"""A string as JSON; rooms and messages are few, so their encodings are kept."""


def _chance(chance: Chance | None) -> str:
    return "" if chance is None else ',"chance":' + json.dumps(
        chance.as_dict(), separators=(",", ":"))


def _number(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def poll_interval(position: int, grace_seconds: int, per_second: float | None = None) -> int:
    """Seconds between polls at ``position``: 2 at the front, growing with distance,
    and always well inside the grace so a patient visitor never loses the place. With
    the room's admissions per second known, a waiter due in the next few seconds asks
    every second (a slot is held for it only a few seconds: see ``claim_window``)."""
    if per_second and position <= per_second * _SOON_SECONDS:
        return 1
    spread = _MIN_POLL_SECONDS + position // _VISITORS_PER_EXTRA_SECOND
    return max(_MIN_POLL_SECONDS, min(spread, grace_seconds // 3))
