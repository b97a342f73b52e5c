"""``GET /_wr/status-page`` and its JSON twin: the room's state in words and the
operator's message, for everyone (cacheable, works without JavaScript)."""

from __future__ import annotations

import time

from starlette.types import Receive, Send

from waitingroom.door.standing import visitor_message
from waitingroom.room.room import Room
from waitingroom.web.asgi import NO_STORE, html_response, json_response
from waitingroom.web.renderer import Pages, state_words
from waitingroom.web.request import Request


async def status_page(room: Room, pages: Pages, request: Request, receive: Receive,
                      send: Send) -> None:
    """The room's state in words and the operator's message. Cacheable for 5 s."""
    config = await room.config()
    if config.mode in ("open", "closed"):
        state = config.mode
    elif config.sold_out:
        state = "sold_out"
    elif room.capturing(config):
        state = "capture"
    elif config.start_at_ms > time.time() * 1000:
        state = "scheduled"
    else:
        state = ("paused" if config.paused else "draw" if config.method == "random"
                 else "queueing")
    headers = {"cache-control": "public, max-age=5"}
    if request.scope["path"].endswith(".json"):
        body = {"room": room.name, "state": state, "state_text": state_words(state),
                "message": visitor_message(config, request),
                "message_at_ms": config.message_at_ms or None}
        response = json_response(body, headers={**headers, "vary": "Accept-Language"})
    else:
        remember = request.language_cookie()
        # Shared caches keep one copy per language; a page that sets the visitor's
        # language cookie is theirs alone.
        headers = ({**NO_STORE} if remember else
                   {**headers, "vary": "Accept-Language, Cookie"})
        response = html_response(
            pages.status(state, visitor_message(config, request) or "",
                              config.message_at_ms,
                              request.language(), request.here()), headers=headers)
        response.raw_headers += [(b"set-cookie", c) for c in remember]
    await response(request.scope, receive, send)
