"""Continue on another device: a one-time link (and its QR code, drawn here) that
moves the caller's place to the device that opens it, at the same position."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import segno
from starlette.responses import Response
from starlette.types import Receive, Send

from waitingroom.door import cookies
from waitingroom.room.room import Room
from waitingroom.tickets import RESUME_MAX_AGE, new_visitor_id
from waitingroom.visitor.feature_pages import resume_link_page, resume_refused_page
from waitingroom.web.asgi import NO_STORE, html_response, json_response, query_params
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request, same_site, with_cookies


async def link(room: Room, pages: Pages, request: Request, receive: Receive, send: Send) -> None:
    """``GET /_wr/resume-link?to=/path``: the link and its QR code; JSON
    ``{"url", "expires_in_seconds"}`` for apps."""
    place = cookies.place_of(room, request)
    if place is None:
        await json_response({"error": "no place in line to move"}, 404)(
            request.scope, receive, send)
        return
    query = query_params(request.scope)
    params = urlencode({"room": room.name, "t": room.tickets.issue_resume(room.name, *place),
                        "to": same_site(query.get("to"))})
    if request.wants_json:
        response = json_response({"url": "/_wr/resume?" + params,
                                  "expires_in_seconds": RESUME_MAX_AGE})
    else:
        url = request.site(room.settings.public_url) + "/_wr/resume?" + params
        response = html_response(resume_link_page(
            pages, url, "/_wr/qr.svg?" + params, request.language(), room=room.name,
            back=same_site(query.get("to")), here="/_wr/resume-link?" + urlencode(
                {"room": room.name, "to": same_site(query.get("to"))})))
    await response(request.scope, receive, send)


async def qr(room: Room, request: Request, receive: Receive, send: Send) -> None:
    """``GET /_wr/qr.svg?t=…``: the resume link as a QR code, drawn here (no third
    party sees the link). Only for genuine resume tokens."""
    query = query_params(request.scope)
    if room.tickets.read_resume(query.get("t"), room.name) is None:
        await json_response({"error": "not found"}, 404)(request.scope, receive, send)
        return
    url = request.site(room.settings.public_url) + "/_wr/resume?" + urlencode(
        {"room": room.name, "t": query["t"], "to": same_site(query.get("to"))})
    svg = io.BytesIO()
    segno.make(url, error="m").save(svg, kind="svg", scale=4, xmldecl=False)
    await Response(svg.getvalue(), headers={**NO_STORE, "x-content-type-options": "nosniff"},
                   media_type="image/svg+xml")(request.scope, receive, send)


async def resume(room: Room, pages: Pages, request: Request, receive: Receive, send: Send) -> None:
    """``GET /_wr/resume?t=…&to=/path`` on the new device: the place moves here, at
    the same position; the old device is told it moved. Each link works once."""
    query = query_params(request.scope)
    old = room.tickets.read_resume(query.get("t"), room.name)
    new_id = new_visitor_id()
    visit = (await room.engine.places.resume(
        room.name, old[0], new_id, number=old[1],
        marker_seconds=room.settings.ticket_max_age_seconds) if old else None)
    if visit is None:
        await html_response(resume_refused_page(pages, request.language()), 403)(
            request.scope, receive, send)
        return
    room.line.moved(visit.number)
    response = Response(b"", 303, headers={**NO_STORE, "location": same_site(query.get("to"))})
    await with_cookies(response, [cookies.ticket_for(room, request, new_id, visit.number)])(
        request.scope, receive, send)
