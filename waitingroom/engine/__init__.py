"""The Redis side: every room's state, changed only by the Lua scripts in ``lua/``.

Owns the room's keys and scripts (``keys``), the connection (``connection``), the
line's scripts (``engine``: visit, watch, touch, release) and the feature stores
beside them (``rooms``, ``captures``, ``breaker``, ``places``, ``stock``,
``timeline``, ``origin_figures``), the batching of calls (``batch``), the
announcements of admissions (``doorbell``) and each process's copy of the line
(``line``).

Keeps: every state change is one script, so any number of processes act as one
room; a room's keys share one hash tag (one Cluster slot); every script is safe to
run twice (a command whose reply was lost is sent again).

May import: the shared modules (``settings``, ``errors``) only.
"""

from waitingroom.engine.breaker_store import BreakerPolicy, BreakerState
from waitingroom.engine.captures import CapturedRecord
from waitingroom.engine.engine import Engine
from waitingroom.engine.keys import BITMAP_CHUNK, HEARD_SLOTS, LINE_BUCKET, room_keys
from waitingroom.engine.origin_figures import IntervalFigures
from waitingroom.engine.places import NoticesDue
from waitingroom.engine.redis_connect import connect, server_supported, too_old_version
from waitingroom.engine.room_change import RoomChange
from waitingroom.engine.rooms import RoomConfig, RoomCounts, RoomDefinition, RoomExists
from waitingroom.engine.stock import StockFigures
from waitingroom.engine.timeline import Step
from waitingroom.engine.visits import Timing, Visit, VisitState

__all__ = [
    "BITMAP_CHUNK",
    "HEARD_SLOTS",
    "LINE_BUCKET",
    "BreakerPolicy",
    "BreakerState",
    "CapturedRecord",
    "Engine",
    "IntervalFigures",
    "NoticesDue",
    "RoomChange",
    "RoomConfig",
    "RoomCounts",
    "RoomDefinition",
    "RoomExists",
    "Step",
    "StockFigures",
    "Timing",
    "Visit",
    "VisitState",
    "connect",
    "room_keys",
    "server_supported",
    "too_old_version",
]
