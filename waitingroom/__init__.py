"""waitingroom: a launch-day virtual waiting room for ASGI apps and any HTTP origin.

The public API is what this module exports. The package is layered (see
docs/architecture.md): entry points (this module, ``middleware``, ``app``, ``cli``,
``tools``) over ``ops``, over the HTTP layer (``gate``, ``proxy``), over the
features (``capture``, ``visitor``), over ``room``, over ``engine`` and ``web``;
``settings``, ``config``, ``errors``, ``fields``, ``status``, ``tickets`` and
``tls`` are the shared vocabulary of them all.

Each export is imported when first asked for: ``import waitingroom.cli`` (an admin
command) does not load the middleware, 0.4 s of imports it never uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from waitingroom.app import build_proxy_app as build_proxy_app
    from waitingroom.config import load_settings as load_settings
    from waitingroom.engine import Engine as Engine
    from waitingroom.engine import RoomConfig as RoomConfig
    from waitingroom.engine import RoomCounts as RoomCounts
    from waitingroom.engine import Visit as Visit
    from waitingroom.engine import VisitState as VisitState
    from waitingroom.errors import ConfigError as ConfigError
    from waitingroom.errors import RedisServerError as RedisServerError
    from waitingroom.errors import WaitingRoomError as WaitingRoomError
    from waitingroom.middleware import WaitingRoomMiddleware as WaitingRoomMiddleware
    from waitingroom.proxy.proxy import OriginProxy as OriginProxy
    from waitingroom.settings import Settings as Settings
    from waitingroom.status import Status as Status

_HOMES = {
    "ConfigError": "waitingroom.errors",
    "Engine": "waitingroom.engine",
    "OriginProxy": "waitingroom.proxy.proxy",
    "RedisServerError": "waitingroom.errors",
    "RoomConfig": "waitingroom.engine",
    "RoomCounts": "waitingroom.engine",
    "Settings": "waitingroom.settings",
    "Status": "waitingroom.status",
    "Visit": "waitingroom.engine",
    "VisitState": "waitingroom.engine",
    "WaitingRoomError": "waitingroom.errors",
    "WaitingRoomMiddleware": "waitingroom.middleware",
    "build_proxy_app": "waitingroom.app",
    "load_settings": "waitingroom.config",
}

__all__ = [  # a literal list, as type checkers read it: the names of _HOMES
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


if not TYPE_CHECKING:  # to a type checker, a name not exported is still an error

    def __getattr__(name: str) -> Any:
        """An export, imported from its home module the first time it is asked for."""
        if name not in _HOMES:
            raise AttributeError(f"module 'waitingroom' has no attribute {name!r}")
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
