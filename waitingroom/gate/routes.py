"""Every room's own endpoints under ``/_wr/``, by path: the one table a reader needs
to find the code behind a URL. Each handler lives in the module of its feature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.types import Receive, Send

from waitingroom.capture.desk import CaptureDesk
from waitingroom.capture.endpoint import capture
from waitingroom.room.room import Room
from waitingroom.visitor import beacons, feed, invites, pow, resume
from waitingroom.visitor.notify_signup import Notices
from waitingroom.visitor.status_page import status_page
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request

Handler = Callable[[Request, Receive, Send], Awaitable[None]]
"""An endpoint of one room."""


def room_routes(room: Room, pages: Pages, desk: CaptureDesk, interest: CaptureDesk,
                notices: Notices) -> dict[str, Handler]:
    """The endpoints of ``room``, answering with ``pages`` (its capture desks, for orders
    and for interest in more stock, and notify-me requests given)."""
    return {
        "/_wr/status": partial(feed.status, room),
        "/_wr/events": partial(feed.events, room),
        "/_wr/status-page": partial(status_page, room, pages),
        "/_wr/status-page.json": partial(status_page, room, pages),
        "/_wr/leave": partial(beacons.leave, room),
        "/_wr/here": partial(beacons.here, room),
        "/_wr/capture": partial(capture, room, desk),
        "/_wr/interest": partial(capture, room, interest),
        "/_wr/invite": partial(invites.redeem, room, pages),
        "/_wr/pow": partial(pow.proof_of_work, room, pages),
        "/_wr/resume-link": partial(resume.link, room, pages),
        "/_wr/resume": partial(resume.resume, room, pages),
        "/_wr/qr.svg": partial(resume.qr, room),
        "/_wr/notify": notices.ask,
        "/_wr/claim": notices.claim,
    }

