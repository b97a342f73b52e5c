"""Where a visitor stands in a room, and what they are told.

Working out a visitor's standing costs at most one Redis round trip: none for a
waiter this process's copy of the line shows, nor for a session checked within the
last second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from waitingroom.door import cookies
from waitingroom.engine import RoomConfig, Visit, VisitState
from waitingroom.room.chance import chance_of
from waitingroom.room.room import Room
from waitingroom.status import State, Status, poll_interval
from waitingroom.tickets import new_visitor_id
from waitingroom.web.request import Request


@dataclass(slots=True)
class Standing:
    """A visitor's standing after one engine call, and the cookies to set for it."""

    visitor_id: str
    admitted: bool
    visit: Visit | None = None
    """The engine's answer, or the process's copy of the line's (waiting visitors)."""
    set_cookies: list[bytes] = field(default_factory=list)
    arriving: bool = False
    """A first visit: no place yet, only the cookie to ask again with (see :func:`stand`)."""


class TooManyNewPlaces(Exception):
    """The client's network took its share of new places for now."""


class ChallengeRequired(Exception):
    """A new place in ``room`` needs proof of work first (``pow_difficulty``)."""

    def __init__(self, room: Room) -> None:
        super().__init__(room.name)
        self.room = room


async def stand(room: Room, request: Request, *, join: bool, claim: bool = True) -> Standing:
    """Work out where the visitor stands, taking a place at the back if ``join`` and
    they hold none. ``claim``: the request goes on to the origin if admitted (else the
    visitor is only told: see :meth:`Engine.visit`)."""
    session_id = cookies.pass_of(room, request)
    if session_id is not None:
        if await room.sessions.alive(session_id):
            return Standing(session_id, admitted=True)
        # The session ended (idle, maximum, released): back of the line, same id.
        standing = await visit(room, request, session_id, join=join, fresh=True, claim=claim)
        if not standing.admitted:  # else a new pass already replaces the old one
            standing.set_cookies.append(request.cookie(cookies.pass_cookie(room), "", 0))
        return standing
    ticket = request.cookies.get(cookies.ticket_cookie(room))
    place = room.tickets.read_place(ticket, room.name)
    if place is not None:
        standing = await waiting(room, request, *place, join=join, claim=claim)
        if standing.admitted:
            joined = room.tickets.ticket_issued_at(ticket)
            if joined is not None:
                room.wait_times.observe(max(0.0, time.time() - joined))
        return standing
    # No ticket, or a forged, expired or foreign one: a fresh place at the back, once
    # the client has shown it keeps the room's cookie (its hello).
    if room.settings.pow_difficulty:
        raise ChallengeRequired(room)
    hello = cookies.hello_of(room, request)
    if hello is None:
        return arriving(room, request)
    if not join:
        return Standing(hello, admitted=False, arriving=True)
    standing = await new_place(room, request, hello, claim=claim)
    standing.set_cookies.append(request.cookie(cookies.hello_cookie(room), "", 0))
    return standing


def arriving(room: Room, request: Request) -> Standing:
    """A first visit: a new visitor id in a hello cookie, and no place, no slot, no
    Redis, until the client asks again with the cookie (a client that never sends it
    back costs the room nothing)."""
    visitor_id = new_visitor_id()
    return Standing(visitor_id, admitted=False, arriving=True,
                    set_cookies=[cookies.hello_for(room, request, visitor_id)])


async def new_place(room: Room, request: Request, visitor_id: str, *, claim: bool) -> Standing:
    """A place at the back for ``visitor_id``, who holds none, within the share of new
    places its network may take."""
    if not room.limits.new_places.allow(request.scope.get("client")):
        raise TooManyNewPlaces
    return await visit(room, request, visitor_id, join=True, fresh=True, new=True, claim=claim)


async def waiting(
    room: Room, request: Request, visitor_id: str, number: int, *, join: bool,
    claim: bool = True,
) -> Standing:
    """Where a ticket holder stands: from this process's copy of the line if it
    shows the place (and no admission since passed it), else from Redis.

    Each process's copy is of its own moment, and the visitor may have been told
    something newer by another process (its ``seen`` cookie): one told it was let in
    is asked of Redis (an older copy would send it back to the line), and a copy
    older than the position it was told never shows a later one."""
    seen = cookies.seen_of(room, request, number)
    if seen is not None and seen[1] == 0:  # told it was let in: only Redis knows more
        position = None
    else:
        position = room.line.position(number) if number > room.doorbell.head else None
    if position is None:
        return await visit(room, request, visitor_id, number, join=join, claim=claim)
    view = room.line.view
    assert view is not None  # a position came from it
    standing = Standing(visitor_id, False)
    if seen is not None and view.server_ms <= seen[0]:  # an older copy than was told
        position = min(position, seen[1])
    elif seen is None or position != seen[1]:  # told something new: say so
        standing.set_cookies.append(cookies.seen_for(room, request, number, view.server_ms,
                                                     position))
    standing.visit = Visit(VisitState.WAITING, position, view.admitted_total,
                           view.server_ms, number)
    return standing


async def visit(
    room: Room, request: Request, visitor_id: str, number: int = 0, *, join: bool,
    fresh: bool = False, new: bool = False, claim: bool = True,
) -> Standing:
    """Ask Redis where the visitor holding place ``number`` (0: none, or in a lane)
    stands; a ticket is set for a ``fresh`` visitor id or a new place in line.
    ``new``, ``claim``: see :meth:`Engine.visit`."""
    answer = await room.engine.visit(room.name, visitor_id, number=number, join=join,
                                     new=new, claim=claim)
    room.rate.observe(answer.server_ms, answer.admitted_total)
    standing = Standing(visitor_id, answer.state is VisitState.ADMITTED, answer)
    if standing.admitted and claim:
        room.sessions.remember(visitor_id, begun=True)
        standing.set_cookies += [cookies.pass_for(room, request, visitor_id),
                                 request.cookie(cookies.ticket_cookie(room), "", 0)]
        if cookies.seen_cookie(room) in request.cookies:
            standing.set_cookies.append(request.cookie(cookies.seen_cookie(room), "", 0))
    elif standing.admitted:  # only told: every process asks Redis about it from now
        if number:
            standing.set_cookies.append(cookies.seen_for(room, request, number,
                                                         answer.server_ms, 0))
    elif answer.state in (VisitState.WAITING, VisitState.PREQUEUE) and (
            fresh or answer.number != number):
        standing.set_cookies.append(cookies.ticket_for(room, request, visitor_id, answer.number))
    elif fresh and answer.state in (VisitState.NO_PLACE, VisitState.FULL):
        # No place, but a name: a form left now (interest in more stock) is theirs.
        standing.set_cookies.append(cookies.ticket_for(room, request, visitor_id, 0))
    if answer.state is VisitState.WAITING and answer.number:  # a place in line: see waiting
        standing.set_cookies.append(cookies.seen_for(room, request, answer.number, answer.server_ms,
                                                  answer.position))
    return standing


def page_cookies(standing: Standing, request: Request) -> list[bytes]:
    """The cookies a page of the room's sets: the visitor's standing, and a language
    picked with the switcher (``?lang=``), so the next page speaks it too."""
    return [*standing.set_cookies, *request.language_cookie()]


def visitor_message(config: RoomConfig, request: Request | None) -> str | None:
    """The operator's message in the language ``request`` reads (worked out only when
    ops gave the message in more than one: a poll does not pay for it otherwise); none
    while sold out if it was posted before (a "selling fast" no longer says the truth)."""
    if not config.message_stands:
        return None
    if config.messages and request is not None:
        return config.message_in(request.language()) or None
    return config.message or None


async def config_for(room: Room, standing: Standing, config: RoomConfig) -> RoomConfig:
    """``config``, or the room's config read again if Redis refused a new place for a
    reason ``config`` does not show (it was closed or sold out under a second-old copy),
    so the visitor is told the true reason."""
    refused = standing.visit is not None and standing.visit.state is VisitState.NO_PLACE
    if refused and config.mode != "closed" and not config.sold_out:
        await room.refresh_config()
        return await room.config()
    return config


def status_of(room: Room, standing: Standing, config: RoomConfig,
              request: Request | None = None, previous_chance: str | None = None) -> Status:
    """What the visitor is told (the operator's message in their language): their
    state, place, wait and when to ask again; while the room counts stock, their chance
    of being served before it runs out (``previous_chance``: the one last shown them)."""
    message = visitor_message(config, request)
    if config.mode == "open":
        return Status(room.name, "open", message=message)
    if standing.arriving:  # ask again at once, with the cookie just given
        return Status(room.name, "arriving", message=message, poll_after_seconds=1)
    capturing = room.capturing(config)
    if standing.admitted or standing.visit is None:
        return Status(room.name, "capture" if capturing else "admitted", message=message)
    if standing.visit.state is VisitState.MOVED:  # now held on another device
        return Status(room.name, "moved", message=message)
    if standing.visit.state is VisitState.FULL:  # the line is as long as ops allow
        return Status(room.name, "full", message=message)
    if standing.visit.state is VisitState.NO_PLACE:  # a closed room took no new place
        return Status(room.name, "sold_out" if config.sold_out else "closed",
                      message=message)
    grace = room.settings.grace_seconds
    if standing.visit.state is VisitState.PREQUEUE:  # before the scheduled start
        wait = max(0, config.start_at_ms - standing.visit.server_ms) // 1000
        return Status(room.name, "capture" if capturing else "prequeue",
                      eta_seconds=wait, message=message, poll_after_seconds=poll_interval(0, grace))
    position = standing.visit.position
    state: State = ("capture" if capturing else "sold_out" if config.sold_out
                    else "paused" if config.paused else "queued")
    if state == "queued" and config.method == "random":  # no order: everyone in the draw
        return Status(room.name, "draw", message=message,
                      poll_after_seconds=poll_interval(0, grace))
    figures = room.sales.figures
    return Status(
        room.name, state, position=position,
        eta_seconds=None if state != "queued" else room.rate.eta_seconds(position),
        message=message,
        poll_after_seconds=poll_interval(position, grace, room.rate.per_second()),
        chance=None if figures is None or figures.stock is None or config.stock is None
        or state == "sold_out"  # nothing left: "sold out for now" says it all
        else chance_of(position, stock=config.stock, active=figures.active,
                       sales_per_session=figures.sales_per_session,
                       previous=previous_chance),
    )
