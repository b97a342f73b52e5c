"""Signed, timestamped, room-bound cookies: the queue ticket and the session pass.

Both carry ``[room, visitor id]`` signed with itsdangerous under their own salt, so
a ticket can never be replayed as a pass. Secrets are given newest first: the
newest signs, every one verifies, so keys rotate without dropping anybody's place.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence

from itsdangerous import BadData, URLSafeTimedSerializer

TICKET_SALT = "waitingroom.ticket"
PASS_SALT = "waitingroom.pass"  # noqa: S105 (a salt, not a secret)
MAX_COOKIE_LENGTH = 256
_VISITOR_ID = re.compile(r"[A-Za-z0-9_-]{12}")


def new_visitor_id() -> str:
    """A fresh random visitor id (72 bits, 12 URL-safe characters)."""
    return secrets.token_urlsafe(9)


class Tickets:
    """Issues and checks the two signed cookies of a waiting room."""

    def __init__(
        self, secret_keys: Sequence[str], *, ticket_max_age: int, pass_max_age: int
    ) -> None:
        if not secret_keys:
            raise ValueError("at least one secret is needed to sign tickets")
        oldest_first = list(reversed(secret_keys))  # itsdangerous signs with the last
        sha256 = {"digest_method": hashlib.sha256}
        self._ticket = URLSafeTimedSerializer(oldest_first, salt=TICKET_SALT,
                                              signer_kwargs=sha256)
        self._pass = URLSafeTimedSerializer(oldest_first, salt=PASS_SALT, signer_kwargs=sha256)
        self._ticket_max_age = ticket_max_age
        self._pass_max_age = pass_max_age

    def issue_ticket(self, room: str, visitor_id: str) -> str:
        """A queue ticket: proves ``visitor_id`` holds a place in ``room``'s line."""
        return self._ticket.dumps([room, visitor_id])

    def issue_pass(self, room: str, session_id: str) -> str:
        """A session pass: proves ``session_id`` was admitted to ``room``."""
        return self._pass.dumps([room, session_id])

    def read_ticket(self, cookie: str | None, room: str) -> str | None:
        """The visitor id of a genuine, unexpired ticket for ``room``; else None."""
        return _read(self._ticket, cookie, room, self._ticket_max_age)

    def read_pass(self, cookie: str | None, room: str) -> str | None:
        """The session id of a genuine, unexpired pass for ``room``; else None."""
        return _read(self._pass, cookie, room, self._pass_max_age)


def _read(
    serializer: URLSafeTimedSerializer, cookie: str | None, room: str, max_age: int
) -> str | None:
    if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
        return None
    try:
        payload = serializer.loads(cookie, max_age=max_age)
    except BadData:  # tampered, expired, signed by an unknown key, or not ours at all
        return None
    match payload:
        case [str(cookie_room), str(visitor_id)] if (
            cookie_room == room and _VISITOR_ID.fullmatch(visitor_id)
        ):
            return visitor_id
    return None
