"""Proof of work before a new place, for bot-heavy launches (``pow_difficulty``).

A newcomer without a ticket is handed a signed, expiring challenge; their browser
(``/_wr/static/pow.js``) searches for a nonce such that SHA-256 of
``challenge:nonce`` starts with ``difficulty`` zero bits, and posts it to
``/_wr/pow``. A person's phone spends about a second at difficulty 16; a bot farm
spends that for every place it mints. Each challenge buys one place (spent in Redis).
"""

from __future__ import annotations

import hashlib

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
