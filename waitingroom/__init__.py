"""waitingroom: a launch-day virtual waiting room for ASGI apps and any HTTP origin."""

from waitingroom.app import build_proxy_app
from waitingroom.engine import Engine, RoomConfig, RoomCounts, Visit, VisitState
from waitingroom.errors import ConfigError, RedisServerError, WaitingRoomError
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.proxy import OriginProxy
from waitingroom.settings import Settings, load_settings
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
