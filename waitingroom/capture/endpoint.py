"""``/_wr/capture``: the capture form (``GET``) and its submissions (``POST``, form or
JSON), for visitors asked to leave their details while the order system is down; and
``/_wr/interest``, the same form for those who want to hear if more stock comes in
(sold out, or unlikely to be served: see docs/stock.md)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Send

from waitingroom.capture.desk import CaptureDesk
from waitingroom.door import cookies
from waitingroom.door.standing import page_cookies, stand, status_of, visitor_message
from waitingroom.room.room import Room
from waitingroom.status import Status
from waitingroom.web.request import Request, with_cookies


async def capture(room: Room, desk: CaptureDesk, request: Request, receive: Receive,
                  send: Send) -> None:
    """``GET``: the form; ``POST``: a submission (form or JSON), to ``desk``."""
    method = request.scope["method"]
    config = await room.config()
    if method == "POST":
        status = Status(room.name, "capture",
                        message=visitor_message(config, request))
        visitor, number = cookies.holder_of(room, request)
        response = await desk.submit(visitor, status, request, receive, number=number)
    elif method in ("GET", "HEAD"):
        # Asking for a form takes no place in line (the gated paths give those) and
        # starts no session (only a request that goes on to the origin does).
        standing = await stand(room, request, join=False, claim=False)
        response = with_cookies(
            desk.form(standing.visitor_id, status_of(room, standing, config, request),
                      request, here=request.here()),
            page_cookies(standing, request))
    else:
        response = Response(b"", 405, headers={"allow": "GET, HEAD, POST"})
    await response(request.scope, receive, send)
