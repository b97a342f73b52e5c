"""The room's cookies on a visitor's requests and answers: the pass, ticket, hello and
"told" cookies a request carries (each signed, room-bound and expiring:
:mod:`waitingroom.tickets`), and the ``Set-Cookie`` headers that hand them out. The room
knows places and sessions; this knows how a browser carries them."""

from __future__ import annotations

from waitingroom.room.room import Room
from waitingroom.room.told import read_told, told_value
from waitingroom.tickets import HELLO_MAX_AGE
from waitingroom.web.request import Request


def pass_cookie(room: Room) -> str:
    """The name of ``room``'s session pass cookie."""
    return f"wr_pass_{room.name}"


def ticket_cookie(room: Room) -> str:
    """The name of ``room``'s place-in-line cookie."""
    return f"wr_ticket_{room.name}"


def hello_cookie(room: Room) -> str:
    """The name of ``room``'s first-visit cookie."""
    return f"wr_hello_{room.name}"


def seen_cookie(room: Room) -> str:
    """The name of the cookie recording what ``room`` last told the visitor."""
    return f"wr_seen_{room.name}"



def pass_of(room: Room, request: Request) -> str | None:
    """The session a genuine pass cookie names, if any."""
    return room.tickets.read_pass(request.cookies.get(pass_cookie(room)), room.name)

def place_of(room: Room, request: Request) -> tuple[str, int] | None:
    """The visitor and arrival number a genuine ticket cookie names, if any."""
    return room.tickets.read_place(request.cookies.get(ticket_cookie(room)), room.name)

def hello_of(room: Room, request: Request) -> str | None:
    """The visitor a genuine hello cookie (a first visit's) names, if any."""
    return room.tickets.read_hello(request.cookies.get(hello_cookie(room)), room.name)

def holder_of(room: Room, request: Request) -> tuple[str | None, int]:
    """The visitor a genuine pass, ticket or hello cookie names, if any, and the
    arrival number of its place in line (0 if none)."""
    session_id = pass_of(room, request)
    if session_id is not None:
        return session_id, 0
    return place_of(room, request) or (hello_of(room, request), 0)

def pass_for(room: Room, request: Request, visitor_id: str) -> bytes:
    """The pass cookie of an admitted visitor."""
    return request.cookie(pass_cookie(room), room.tickets.issue_pass(room.name, visitor_id),
                          room.settings.session_max_seconds)

def hello_for(room: Room, request: Request, visitor_id: str) -> bytes:
    """The hello cookie of a first visit (:data:`~waitingroom.tickets.HELLO_MAX_AGE`)."""
    return request.cookie(hello_cookie(room), room.tickets.issue_hello(room.name, visitor_id),
                          HELLO_MAX_AGE)

def ticket_for(room: Room, request: Request, visitor_id: str, number: int = 0) -> bytes:
    """The ticket cookie of a visitor holding place ``number`` in line (0: a lane)."""
    return request.cookie(ticket_cookie(room),
                          room.tickets.issue_ticket(room.name, visitor_id, number),
                          room.settings.ticket_max_age_seconds)

def seen_of(room: Room, request: Request, number: int) -> tuple[int, int] | None:
    """What the holder of place ``number`` was last told, by whichever process:
    ``(room time ms, position)``, position 0 if told it was let in; None if unknown
    (see :mod:`waitingroom.room.told`). Its cookie says, or, for an event stream
    reconnecting, the last event it got (the later of the two)."""
    told = read_told(request.cookies.get(seen_cookie(room)), number)
    if request.last_event_id:
        streamed = read_told(request.last_event_id, number)
        if told is None or (streamed is not None and streamed > told):
            told = streamed
    return told

def seen_for(room: Room, request: Request, number: int, server_ms: int, position: int) -> bytes:
    """The cookie recording that place ``number`` was told ``position`` (0: let in)
    as the line stood at ``server_ms``."""
    return request.cookie(seen_cookie(room), told_value(number, server_ms, position),
                          room.settings.ticket_max_age_seconds)
