"""What a visit answers: where a visitor stands, and the room's time limits every
script that moves visitors is given."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class VisitState(enum.IntEnum):
    """Where a visitor stands after :meth:`Engine.visit`."""

    NO_PLACE = -1
    WAITING = 0
    ADMITTED = 1
    PREQUEUE = 2
    """Arrived before a scheduled start: the draw at the start decides the order."""
    MOVED = -2
    """The place moved to another device (:meth:`PlaceStore.resume`)."""
    FULL = -3
    """No place: the line is as long as ops allow (``max_waiting``)."""


VISIT_STATES = {state.value: state for state in VisitState}  # faster than VisitState(n)


@dataclass(frozen=True, slots=True)
class Visit:
    """Result of :meth:`Engine.visit`."""

    state: VisitState
    position: int
    """1-based place in line while waiting; 0 otherwise."""
    admitted_total: int
    """Visitors this room has admitted so far (feeds the admission-rate estimate)."""
    server_ms: int
    """Redis server time of the answer, in milliseconds."""
    number: int = 0
    """The arrival number of the place held in line (0 when admitted, in a lane or
    holding none): give it back to :meth:`Engine.visit` to keep the place."""


@dataclass(frozen=True, slots=True)
class Timing:
    """The room's time limits in milliseconds (see ``Settings``)."""

    grace_ms: int
    """How long a waiter not heard from keeps its place."""
    idle_ms: int
    """A session ends after this long without a request."""
    max_ms: int
    """A session ends this long after it started, whatever it does."""
    first_idle_ms: int = 0
    """A session that made one request only ends after this long idle (0: off)."""
