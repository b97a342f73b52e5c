"""The refusals any endpoint may give: Redis out of reach, too many new places from
one network, a per-process limit reached."""

from __future__ import annotations

from starlette.types import Receive, Send

from waitingroom.web.asgi import NO_STORE, html_response, json_response
from waitingroom.web.limits import NetworkShare
from waitingroom.web.paths import RESERVED_PREFIX
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request


def _wants_json(request: Request) -> bool:
    return request.wants_json or request.scope["path"].startswith(RESERVED_PREFIX)


async def unavailable(pages: Pages, request: Request, receive: Receive, send: Send) -> None:
    """Answer while Redis is unreachable: a 503 that says to try again shortly."""
    if request.scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013})  # try again later
        return
    headers = {**NO_STORE, "retry-after": "5"}
    if _wants_json(request):
        response = json_response({"error": "temporarily unavailable"}, 503, headers)
    else:
        response = html_response(pages.unavailable(request.language()), 503,
                                 headers)
    await response(request.scope, receive, send)


async def too_many_new_places(pages: Pages, request: Request, limit: NetworkShare,
                              receive: Receive, send: Send) -> None:
    """Answer a newcomer from a network over its share of new places: 429."""
    headers = {**NO_STORE, "retry-after": str(limit.retry_after_seconds)}
    if _wants_json(request):
        response = json_response({"error": "too many new places from your network; "
                                  "try again shortly"}, 429, headers)
    else:
        response = html_response(pages.too_many(limit.retry_after_seconds,
                                                        request.language()), 429, headers)
    await response(request.scope, receive, send)


async def busy(request: Request, status: int, receive: Receive, send: Send) -> None:
    """Past a per-process limit: try again in a second."""
    headers = {**NO_STORE, "retry-after": "1"}
    await json_response({"error": "too many requests at once; try again shortly"}, status,
                        headers)(request.scope, receive, send)

