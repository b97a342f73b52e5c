"""Signed, timestamped, room-bound tokens, eight kinds: the hello (a first visit's
cookie: no place yet), the queue ticket, the session pass, the capture form's CSRF
token, invite links, notify-me claim links, resume links and proof-of-work
challenges.

Each carries ``[room, id]`` signed with itsdangerous under a salt of its own, so one
kind can never be replayed as another. A ticket (and a resume link) also carries the
arrival number of the place in line. Secrets are given newest first: the newest
signs, every one verifies, so keys rotate without dropping anybody's place.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Sequence

from itsdangerous import BadData, URLSafeTimedSerializer

HELLO_SALT = "waitingroom.hello"
TICKET_SALT = "waitingroom.ticket"
PASS_SALT = "waitingroom.pass"  # noqa: S105 (a salt, not a secret)
CSRF_SALT = "waitingroom.capture-form"
INVITE_SALT = "waitingroom.invite"
CHALLENGE_SALT = "waitingroom.proof-of-work"
RESUME_SALT = "waitingroom.resume"
CLAIM_SALT = "waitingroom.claim"
HELLO_MAX_AGE = 300
CLAIM_MAX_AGE = 3600  # the slot held in Redis (notify_claim_seconds) ends it sooner
RESUME_MAX_AGE = 600
CHALLENGE_MAX_AGE = 300
INVITE_MAX_AGE = 30 * 86_400  # the use counter in Redis expires invites sooner
CSRF_MAX_AGE = 2 * 3600
MAX_COOKIE_LENGTH = 256
VERIFIED_CACHE_SIZE = 20_000
CLOCK_SKEW = 300
"""Seconds a cookie's signing time may lie in this process's future: another machine's
clock may run ahead (itsdangerous itself refuses any future time, which would cost a
visitor the place whenever machines disagree by a second)."""
_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{12}")


def new_visitor_id() -> str:
    """A fresh random visitor id (72 bits, 12 URL-safe characters)."""
    return secrets.token_urlsafe(9)


class Tickets:
    """Issues and checks the signed tokens of a waiting room."""

    def __init__(
        self, secret_keys: Sequence[str], *, ticket_max_age: int, pass_max_age: int
    ) -> None:
        if not secret_keys:
            raise ValueError("at least one secret is needed to sign tickets")
        oldest_first = list(reversed(secret_keys))  # itsdangerous signs with the last
        sha256 = {"digest_method": hashlib.sha256}
        self._hello = _Reader(URLSafeTimedSerializer(oldest_first, salt=HELLO_SALT,
                                                     signer_kwargs=sha256), HELLO_MAX_AGE)
        self._ticket = _Reader(URLSafeTimedSerializer(oldest_first, salt=TICKET_SALT,
                                                      signer_kwargs=sha256), ticket_max_age)
        self._pass = _Reader(URLSafeTimedSerializer(oldest_first, salt=PASS_SALT,
                                                    signer_kwargs=sha256), pass_max_age)
        self._csrf = _Reader(URLSafeTimedSerializer(oldest_first, salt=CSRF_SALT,
                                                    signer_kwargs=sha256), CSRF_MAX_AGE)
        self._invite = _Reader(URLSafeTimedSerializer(oldest_first, salt=INVITE_SALT,
                                                      signer_kwargs=sha256), INVITE_MAX_AGE)
        self._claim = _Reader(URLSafeTimedSerializer(
            oldest_first, salt=CLAIM_SALT, signer_kwargs=sha256), CLAIM_MAX_AGE)
        self._resume = _Reader(URLSafeTimedSerializer(
            oldest_first, salt=RESUME_SALT, signer_kwargs=sha256), RESUME_MAX_AGE)
        self._challenge = _Reader(URLSafeTimedSerializer(
            oldest_first, salt=CHALLENGE_SALT, signer_kwargs=sha256), CHALLENGE_MAX_AGE)

    def issue_hello(self, room: str, visitor_id: str) -> str:
        """A first visit's cookie: ``visitor_id`` takes its place in ``room``'s line
        when it comes back with it (a client that never sends it back takes none)."""
        return self._hello.serializer.dumps([room, visitor_id])

    def read_hello(self, cookie: str | None, room: str) -> str | None:
        """The visitor id of a genuine, unexpired hello for ``room``; else None."""
        return self._hello.read(cookie, room)

    def issue_ticket(self, room: str, visitor_id: str, number: int = 0) -> str:
        """A queue ticket: proves ``visitor_id`` holds a place in ``room``'s line, the
        one with arrival ``number`` (0: in a lane, or not known)."""
        return self._ticket.serializer.dumps([room, visitor_id, number])

    def issue_pass(self, room: str, session_id: str) -> str:
        """A session pass: proves ``session_id`` was admitted to ``room``."""
        return self._pass.serializer.dumps([room, session_id])

    def read_ticket(self, cookie: str | None, room: str) -> str | None:
        """The visitor id of a genuine, unexpired ticket for ``room``; else None."""
        place = self._ticket.read_place(cookie, room)
        return place[0] if place else None

    def read_place(self, cookie: str | None, room: str) -> tuple[str, int] | None:
        """The visitor id and arrival number of a genuine, unexpired ticket for
        ``room``; else None."""
        return self._ticket.read_place(cookie, room)

    def read_pass(self, cookie: str | None, room: str) -> str | None:
        """The session id of a genuine, unexpired pass for ``room``; else None."""
        return self._pass.read(cookie, room)


    def ticket_issued_at(self, cookie: str | None) -> float | None:
        """When a ticket already read was issued (epoch seconds): when its holder
        joined the line. None for a ticket not read before."""
        return self._ticket.issued_at(cookie)

    def issue_csrf(self, room: str, visitor_id: str) -> str:
        """A capture-form token: only this visitor's own form can be submitted."""
        return self._csrf.serializer.dumps([room, visitor_id])

    def read_csrf(self, token: str | None, room: str) -> str | None:
        """The visitor id a genuine, unexpired form token was issued to; else None."""
        return self._csrf.read(token, room)


    def issue_invite(self, room: str, invite_id: str) -> str:
        """An invite link's token (its uses and expiry are counted in Redis)."""
        return self._invite.serializer.dumps([room, invite_id])

    def read_invite(self, token: str | None, room: str) -> str | None:
        """The invite id of a genuine invite token for ``room``; else None."""
        return self._invite.read(token, room)

    def issue_claim(self, room: str, visitor_id: str) -> str:
        """A notified visitor's one-time link token: it admits ``visitor_id``."""
        return self._claim.serializer.dumps([room, visitor_id])

    def read_claim(self, token: str | None, room: str) -> str | None:
        """The visitor id of a genuine, unexpired claim token for ``room``; else None."""
        return self._claim.read(token, room)

    def issue_resume(self, room: str, visitor_id: str, number: int = 0) -> str:
        """A "continue on another device" token for ``visitor_id``'s place (arrival
        ``number``), good for 10 minutes."""
        return self._resume.serializer.dumps([room, visitor_id, number])

    def read_resume(self, token: str | None, room: str) -> tuple[str, int] | None:
        """The visitor id and arrival number of a genuine, unexpired resume token for
        ``room``; else None."""
        return self._resume.read_place(token, room)

    def issue_challenge(self, room: str, challenge_id: str) -> str:
        """A proof-of-work challenge for a new place in ``room`` (five minutes)."""
        return self._challenge.serializer.dumps([room, challenge_id])

    def read_challenge(self, token: str | None, room: str) -> str | None:
        """The id of a genuine, unexpired challenge for ``room``; else None."""
        return self._challenge.read(token, room)


class _Reader:
    """Verifies one kind of cookie, remembering genuine ones until they expire.

    A waiting visitor sends the same cookie with every poll; checking its HMAC once
    instead of every time takes a third off the poll's cost. Only verified cookies
    are remembered (forged ones cannot fill the cache), and at most
    ``VERIFIED_CACHE_SIZE`` of them, oldest dropped first.
    """

    def __init__(self, serializer: URLSafeTimedSerializer, max_age: int) -> None:
        self.serializer = serializer
        self._max_age = max_age
        self._verified: dict[str, tuple[str, str, int, float]] = {}

    def issued_at(self, cookie: str | None) -> float | None:
        known = self._verified.get(cookie or "")
        return known[3] - self._max_age if known else None

    def read(self, cookie: str | None, room: str) -> str | None:
        place = self.read_place(cookie, room)
        return place[0] if place else None

    def read_place(self, cookie: str | None, room: str) -> tuple[str, int] | None:
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return None
        known = self._verified.get(cookie)
        if known is not None and time.time() < known[3]:
            return (known[1], known[2]) if known[0] == room else None
        try:  # the age is checked below, allowing for other machines' clocks
            payload, signed_at = self.serializer.loads(cookie, return_timestamp=True)
        except BadData:  # tampered, signed by an unknown key, or not ours at all
            return None
        age = time.time() - signed_at.timestamp()
        if not -CLOCK_SKEW <= age <= self._max_age:
            return None
        match payload:  # [room, id] or [room, id, arrival number]
            case [str(cookie_room), str(visitor_id)]:
                number = 0
            case [str(cookie_room), str(visitor_id), int(number)] if (
                    number >= 0 and not isinstance(number, bool)):
                pass
            case _:
                return None
        if not _VISITOR_ID.fullmatch(visitor_id):
            return None
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        expires = signed_at.timestamp() + self._max_age
        self._verified[cookie] = (cookie_room, visitor_id, number, expires)
        return (visitor_id, number) if cookie_room == room else None
