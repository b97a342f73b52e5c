"""waitingroom: a launch-day virtual waiting room for ASGI apps and any HTTP origin.

The public API is what this module exports. The package is layered (see
docs/architecture.md): entry points (this module, ``middleware``, ``app``, ``cli``,
``tools``) over ``ops``, over the HTTP layer (``gate``, ``proxy``), over the
features (``capture``, ``visitor``), over ``room``, over ``engine`` and ``web``;
``settings``, ``config``, ``errors``, ``fields``, ``status``, ``tickets`` and
``tls`` are the shared vocabulary of them all.
"""

from waitingroom.app import build_proxy_app
from waitingroom.config import load_settings
from waitingroom.engine import Engine, RoomConfig, RoomCounts, Visit, VisitState
from waitingroom.errors import ConfigError, RedisServerError, WaitingRoomError
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.proxy.proxy import OriginProxy
from waitingroom.settings import Settings
from waitingroom.status import Status

__all__ = [
    "ConfigError",
    "Engine",
    "OriginProxy",
    "RedisServerError",
    "RoomConfig",
    "RoomCounts",
    "Settings",
    "Status",
    "Visit",
    "VisitState",
    "WaitingRoomError",
    "WaitingRoomMiddleware",
    "build_proxy_app",
    "load_settings",
]
