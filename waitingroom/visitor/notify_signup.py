"""Notify me when it's my turn: a waiter leaves an email address or phone number and
walks away; their place is kept, and when they are admitted they are sent a one-time
link (``/_wr/claim``) that lets them in."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.types import Receive, Send

from waitingroom.door import cookies
from waitingroom.engine import VisitState
from waitingroom.fields import e164, parse_fields, validate
from waitingroom.room.room import Room
from waitingroom.tickets import CLAIM_MAX_AGE
from waitingroom.visitor.feature_pages import notify_page, resume_refused_page
from waitingroom.visitor.notify_delivery import Notice, Notifier
from waitingroom.web.asgi import (
    NO_STORE,
    BadRequest,
    html_response,
    json_response,
    query_params,
    small_form,
)
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request, same_site, with_cookies

_NOTIFY_FIELDS = parse_fields("email:email,phone:phone")


class Notices:
    """One room's notify-me requests: taken, kept, and sent when their turn comes."""

    def __init__(self, room: Room, pages: Pages) -> None:
        self.room = room
        self.pages = pages
        self.notifier = Notifier(room.settings)
        self._sending: set[asyncio.Task[None]] = set()
        self._restock_told = 0
        """The last restock whose interest records this process found all taken."""

    async def ask(self, request: Request, receive: Receive, send: Send) -> None:
        """``POST /_wr/notify`` (form or JSON: ``email`` and/or ``phone``, ``to``): tell
        me when it's my turn. The place is kept while the visitor is away. Limited per
        place and per network; numbers must be E.164 (``+447700900123``)."""
        place = cookies.place_of(self.room, request)
        if request.scope["method"] != "POST" or not self.notifier.enabled:
            answer = json_response({"error": "not found"}, 404)
        elif place is None:
            answer = await self._no_place(request, receive)
        else:
            answer = await self._take(request, receive, place)
        await answer(request.scope, receive, send)

    async def _take(self, request: Request, receive: Receive,
                    place: tuple[str, int]) -> Response:
        room = self.room
        try:
            fields = await small_form(receive)
        except BadRequest as bad:
            fields, unreadable = {}, str(bad)
        else:
            unreadable = ""
        if fields is None:
            return json_response({"error": "body too large"}, 413)
        limits = room.limits
        if not (limits.notify_per_visitor.allow(place[0])
                and limits.notify_per_network.allow_network(request.scope.get("client"))):
            return json_response({"error": "too many requests to be notified; try later"},
                                 429, {**NO_STORE, "retry-after": "600"})
        values, errors = _checked(fields, unreadable)
        target = same_site(fields.get("to"))
        if errors and not request.wants_json:  # the form again, saying what is wrong
            lang = request.language()
            said = "; ".join(_said(request, name, code, lang) for name, code in errors.items())
            return html_response(notify_page(self.pages, lang, room=room.name, here=target,
                                             error=said), 400)
        if errors:
            return json_response({"error": "check the fields", "errors": {
                name: _said(request, name, code, "en") for name, code in errors.items()}}, 400)
        if not await room.engine.places.ask_to_notify(
                room.name, place[0], {"email": values.get("email", ""),
                                      "phone": values.get("phone", ""),
                                      "origin": request.site(room.settings.public_url),
                                      "to": target},
                number=place[1], away_seconds=room.settings.ticket_max_age_seconds):
            return json_response({"error": "no place in line"}, 404)
        if request.wants_json:
            return json_response({"state": "notify", "email": values.get("email") or None,
                                  "phone": values.get("phone") or None})
        return html_response(notify_page(
            self.pages, request.language(), here=target,
            claim_minutes=claim_minutes(room)))

    @staticmethod
    async def _no_place(request: Request, receive: Receive) -> Response:
        """No place to keep: a script is told so; a person is sent back to the page
        the form was on, which gives a place at the back (and the form again)."""
        if request.wants_json:
            return json_response({"error": "no place in line"}, 404)
        try:
            fields = await small_form(receive) or {}
        except BadRequest:
            fields = {}
        return Response(b"", 303, headers={**NO_STORE, "location": same_site(fields.get("to"))})

    async def claim(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/claim?t=…``: a notified visitor's link. It admits them, once; the
        device it admitted, opening it again, is taken on to the shop."""
        room = self.room
        query = query_params(request.scope)
        visitor_id = room.tickets.read_claim(query.get("t"), room.name)
        visit = None
        if visitor_id and (visitor_id == cookies.pass_of(room, request)  # in already
                           or await room.engine.places.spend(
                               room.name, "claim-" + visitor_id, ttl_seconds=CLAIM_MAX_AGE)):
            visit = await room.engine.visit(room.name, visitor_id, join=False)
        if visitor_id is None or visit is None or visit.state is not VisitState.ADMITTED:
            await html_response(resume_refused_page(self.pages, request.language()), 403)(
                request.scope, receive, send)
            return
        response = Response(b"", 303, headers={**NO_STORE,
                                               "location": same_site(query.get("to"))})
        await with_cookies(response, [cookies.pass_for(room, request, visitor_id)])(
            request.scope, receive, send)

    async def send_due(self) -> None:
        """Tell the admitted visitors who asked to be told (each once, in whichever
        process takes the request first); sending runs beside the tick."""
        room = self.room
        if not self.notifier.enabled:
            return
        due = await room.engine.places.notices_due(room.name)
        if due.away:  # their turn comes as sessions end: keep the line's upkeep going
            room.line.keep_looking()
        for visitor_id in due.admitted:
            record = await room.engine.places.take_notice(
                room.name, visitor_id, claim_seconds=room.settings.notify_claim_seconds)
            if record is None:
                continue
            link = record["origin"] + "/_wr/claim?" + urlencode(
                {"room": room.name, "t": room.tickets.issue_claim(room.name, visitor_id),
                 "to": record["to"]})
            self._send(Notice(room.name, record["email"], record["phone"], link,
                              claim_minutes=claim_minutes(room)))

    async def tell_restock(self) -> None:
        """After a restock, tell those who left their details (``/_wr/interest``) before
        it: each once, by whichever process takes them (a batch a tick)."""
        room = self.room
        config = await room.config()
        if not self.notifier.enabled or config.restocked_at_ms <= self._restock_told:
            return
        records = await room.engine.stock.take_interest(room.name)
        if not records:
            self._restock_told = config.restocked_at_ms
        link = room.settings.public_url.rstrip("/") + "/"
        for fields in records:
            self._send(Notice(room.name, fields.get("email", ""), fields.get("phone", ""),
                              link, restock=True))

    def _send(self, notice: Notice) -> None:
        task = asyncio.create_task(self.notifier.send(notice))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def aclose(self) -> None:
        """Wait for the notices being sent."""
        await asyncio.gather(*self._sending, return_exceptions=True)


def _checked(fields: dict[str, str], unreadable: str) -> tuple[dict[str, str], dict[str, str]]:
    """The email address and E.164 number given, and what is wrong with them (error
    codes, or an unreadable form's own words)."""
    values, errors = validate(_NOTIFY_FIELDS, fields)
    if unreadable:
        errors = {"form": unreadable}
    elif not errors and not (values.get("email") or values.get("phone")):
        errors = {"email": "need_contact"}
    elif values.get("phone") and not errors:
        values["phone"] = e164(values["phone"]) or ""
        if not values["phone"]:
            errors = {"phone": "phone_e164"}
    return values, errors


def _said(request: Request, name: str, code: str, lang: str) -> str:
    """Field ``name``'s error code in words (an unreadable form's words are its own)."""
    return request.languages.field_error(
        code, lang, next((f.max_length for f in _NOTIFY_FIELDS if f.name == name), 0))


def claim_minutes(room: Room) -> int:
    """How long a notified visitor's link holds their turn, in whole minutes (at least
    one): what the page promises and the message says."""
    return max(1, room.settings.notify_claim_seconds // 60)
