"""The standalone reverse proxy: the waiting room middleware around :class:`OriginProxy`."""

from __future__ import annotations

from waitingroom.config import load_settings
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.ops.logging import configure as configure_logging
from waitingroom.proxy.proxy import OriginProxy
from waitingroom.settings import Settings
from waitingroom.web.server import LimitedHttpToolsProtocol


def build_proxy_app(settings: Settings) -> WaitingRoomMiddleware:
    """The ASGI app ``waitingroom serve`` runs: gate, then forward to ``settings.origin``."""
    settings.require("origin", "secret")
    origin = OriginProxy(settings.origin, connect_timeout=settings.origin_connect_timeout_seconds,
                         read_timeout=settings.origin_timeout_seconds,
                         max_connections=settings.origin_max_connections,
                         slot_timeout=settings.origin_slot_timeout_seconds,
                         max_body_bytes=settings.max_request_body_bytes,
                         ca_file=settings.origin_ca_file,
                         trust_forwarded_for=bool(settings.forwarded_allow_ips))
    return WaitingRoomMiddleware(origin, settings=settings)


def proxy_app_from_environment() -> WaitingRoomMiddleware:
    """App factory for uvicorn worker processes: settings come from ``WAITINGROOM_*``
    (the request-head limits too, for the worker's protocol); logs go to stderr as
    JSON lines."""
    configure_logging()
    settings = load_settings()
    LimitedHttpToolsProtocol.configure(settings)
    return build_proxy_app(settings)
