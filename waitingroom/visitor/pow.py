"""Proof of work before a new place, for bot-heavy launches (``pow_difficulty``).

A newcomer without a ticket is handed a signed, expiring challenge; their browser
(``/_wr/static/pow.js``) searches for a nonce such that SHA-256 of
``challenge:nonce`` starts with ``difficulty`` zero bits, and posts it to
``/_wr/pow``. A person's phone spends about a second at difficulty 16; a bot farm
spends that for every place it mints. Each challenge buys one place (spent in Redis).
"""

from __future__ import annotations

import hashlib

from starlette.types import Receive, Send

from waitingroom.door.standing import new_place, status_of
from waitingroom.room.room import Room
from waitingroom.tickets import CHALLENGE_MAX_AGE, new_visitor_id
from waitingroom.visitor.feature_pages import challenge_page
from waitingroom.web.asgi import html_response, json_response, send_json, small_form
from waitingroom.web.paths import RESERVED_PREFIX
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request

MAX_DIFFICULTY = 24


def solves(challenge: str, nonce: str, difficulty: int) -> bool:
    """Does ``nonce`` solve ``challenge``: ``difficulty`` leading zero bits?"""
    if not nonce.isdigit() or len(nonce) > 12:
        return False
    digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - difficulty) == 0 if difficulty else True


def solve(challenge: str, difficulty: int) -> str:
    """Find a nonce (what the page's script does; for tests and API clients' docs)."""
    nonce = 0
    while not solves(challenge, str(nonce), difficulty):
        nonce += 1
    return str(nonce)


async def challenge(room: Room, pages: Pages, request: Request, receive: Receive,
                    send: Send) -> None:
    """Answer a newcomer with a proof-of-work challenge instead of a place."""
    token = room.tickets.issue_challenge(room.name, new_visitor_id())
    difficulty = room.settings.pow_difficulty
    if request.wants_json or request.scope["path"].startswith(RESERVED_PREFIX):
        response = json_response(
            {"error": "proof of work required", "challenge": token,
             "difficulty": difficulty,
             "solve": "POST /_wr/pow with challenge and nonce, where SHA-256 of "
                      "'challenge:nonce' starts with difficulty zero bits"}, 403)
    else:
        response = html_response(challenge_page(pages, request.language(),
                                                room.name, token, difficulty))
    await response(request.scope, receive, send)


async def proof_of_work(room: Room, pages: Pages, request: Request, receive: Receive,
                        send: Send) -> None:
    """``POST /_wr/pow``: a solved challenge (form or JSON) buys one new place."""
    if request.scope["method"] != "POST":
        await json_response({"error": "method not allowed"}, 405)(
            request.scope, receive, send)
        return
    fields = await small_form(receive)
    if fields is None:
        await json_response({"error": "body too large"}, 413)(request.scope, receive, send)
        return
    token, nonce = fields.get("challenge", ""), fields.get("nonce", "")
    challenge_id = room.tickets.read_challenge(token, room.name)
    if (challenge_id is None or not solves(token, nonce, room.settings.pow_difficulty)
            or not await room.engine.places.spend(room.name, challenge_id,
                                                  ttl_seconds=CHALLENGE_MAX_AGE)):
        await json_response({"error": "not a fresh, solved challenge"}, 403)(
            request.scope, receive, send)
        return
    config = await room.config()
    standing = await new_place(room, request, new_visitor_id(), claim=False)
    await send_json(send, status_of(room, standing, config, request).to_json(),
                    standing.set_cookies)
