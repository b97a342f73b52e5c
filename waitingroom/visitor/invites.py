"""``GET /_wr/invite?t=TOKEN&to=/path``: an invite link (staff, VIPs) made with the
admin API. The holder goes to the priority lane, served before the queue and never
over capacity."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Send

from waitingroom.door import cookies
from waitingroom.engine import VisitState
from waitingroom.room.room import Room
from waitingroom.tickets import new_visitor_id
from waitingroom.visitor.feature_pages import invite_refused_page
from waitingroom.web.asgi import NO_STORE, html_response, query_params
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request, same_site, with_cookies


async def redeem(room: Room, pages: Pages, request: Request, receive: Receive, send: Send) -> None:
    """Use the invite for the caller (giving up any place held), then go on to ``to``."""
    query = query_params(request.scope)
    invite_id = room.tickets.read_invite(query.get("t"), room.name)
    target = same_site(query.get("to"))
    visitor_id, number = cookies.holder_of(room, request)
    visitor_id = visitor_id or new_visitor_id()
    await room.config()
    visit = (await room.engine.places.redeem_invite(room.name, invite_id, visitor_id,
                                                    number=number)
             if invite_id else None)
    if visit is None:
        await html_response(invite_refused_page(pages, request.language()), 403)(
            request.scope, receive, send)
        return
    response = Response(b"", 303, headers={**NO_STORE, "location": target})
    cookie = (cookies.pass_for(room, request, visitor_id) if visit.state is VisitState.ADMITTED
              else cookies.ticket_for(room, request, visitor_id))
    await with_cookies(response, [cookie])(request.scope, receive, send)
