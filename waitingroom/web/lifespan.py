"""A middleware's own start-up and shutdown, around the app's lifespan: run whether or
not the app it wraps speaks the lifespan protocol (many plain ASGI apps return at once,
or raise, on a ``lifespan`` scope; the server then never says start or stop to anyone
in the chain, and what the middleware opened would never be closed)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("waitingroom")


async def around_lifespan(app: ASGIApp, scope: Scope, receive: Receive, send: Send, *,
                          startup: Callable[[], Awaitable[None]],
                          shutdown: Callable[[], Awaitable[None]]) -> None:
    """Run ``app``'s lifespan with ``startup`` done as the server's start-up message
    arrives (before the app's own) and ``shutdown`` as its shutdown message does. If
    ``app`` leaves the protocol before its end (it returns, or raises before asking for
    a message, or returns after its start-up), finish it in its place, so ours run."""
    received: set[str] = set()
    sent: set[str] = set()

    async def ours_first() -> Message:
        message = await receive()
        received.add(message["type"])
        if message["type"] == "lifespan.startup":
            await startup()
        elif message["type"] == "lifespan.shutdown":
            await shutdown()
        return message

    async def noted(message: Message) -> None:
        sent.add(message["type"])
        await send(message)

    try:
        await app(scope, ours_first, noted)
    except Exception:
        if received:
            raise
        logger.debug("the app does not speak the lifespan protocol", exc_info=True)
    if "lifespan.shutdown" in received or "lifespan.startup.failed" in sent:
        return
    if "lifespan.startup" in received and "lifespan.startup.complete" not in sent:
        await send({"type": "lifespan.startup.complete"})
    while True:  # the app has left: we go on
        message = await ours_first()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
