"""The standalone reverse proxy: the waiting room middleware around :class:`OriginProxy`."""

from __future__ import annotations

from waitingroom._logging import configure as configure_logging
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.proxy import OriginProxy
from waitingroom.settings import Settings, load_settings


def build_proxy_app(settings: Settings) -> WaitingRoomMiddleware:
    """The ASGI app ``waitingroom serve`` runs: gate, then forward to ``settings.origin``."""
    settings.require("origin", "secret")
    origin = OriginProxy(settings.origin, connect_timeout=settings.origin_connect_timeout_seconds,
                         read_timeout=settings.origin_timeout_seconds,
                         ca_file=settings.origin_ca_file)
    return WaitingRoomMiddleware(origin, settings=settings)


def proxy_app_from_environment() -> WaitingRoomMiddleware:
    """App factory for uvicorn worker processes: settings come from ``WAITINGROOM_*``;
    logs go to stderr as JSON lines."""
    configure_logging()
    return build_proxy_app(load_settings())
