"""Signed cookies: salts, room binding, rotation, expiry (also once cached)."""

from __future__ import annotations

import hashlib
import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from waitingroom import tickets as tickets_module
from waitingroom.tickets import TICKET_SALT, Tickets, new_visitor_id

OLD, NEW = "an-old-secret-key-0001", "a-new-secret-key-00002"


def make(*secrets: str, max_age: int = 600) -> Tickets:
    return Tickets(list(secrets), ticket_max_age=max_age, pass_max_age=max_age)


def test_round_trip_and_salt_separation() -> None:
    t = make(NEW)
    vid = new_visitor_id()
    assert t.read_ticket(t.issue_ticket("r", vid), "r") == vid
    assert t.read_pass(t.issue_pass("r", vid), "r") == vid
    assert t.read_pass(t.issue_ticket("r", vid), "r") is None
    assert t.read_ticket(t.issue_pass("r", vid), "r") is None


def test_bound_to_the_room_even_when_cached() -> None:
    t = make(NEW)
    ticket = t.issue_ticket("a", new_visitor_id())
    assert t.read_ticket(ticket, "a") is not None
    assert t.read_ticket(ticket, "b") is None  # second read comes from the cache


def test_newest_secret_signs_and_all_verify() -> None:
    vid = new_visitor_id()
    old_ticket = make(OLD).issue_ticket("r", vid)
    rotated = make(NEW, OLD)
    assert rotated.read_ticket(old_ticket, "r") == vid
    assert make(NEW).read_ticket(rotated.issue_ticket("r", vid), "r") == vid
    assert make(OLD).read_ticket(rotated.issue_ticket("r", vid), "r") is None


def test_a_cached_cookie_still_expires_on_time() -> None:
    class TwoSecondsAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 2

    serializer = URLSafeTimedSerializer([NEW], salt=TICKET_SALT, signer=TwoSecondsAgo,
                                        signer_kwargs={"digest_method": hashlib.sha256})
    vid = new_visitor_id()
    ticket = serializer.dumps(["r", vid])
    t = make(NEW, max_age=3)
    assert t.read_ticket(ticket, "r") == vid
    deadline = time.monotonic() + 5
    while t.read_ticket(ticket, "r") is not None:  # the clock has to pass the max age
        assert time.monotonic() < deadline, "cached ticket outlived its max age"
        time.sleep(0.05)


def test_the_cache_is_bounded() -> None:
    t = make(NEW)
    size = tickets_module.VERIFIED_CACHE_SIZE
    cookies = [t.issue_ticket("r", new_visitor_id()) for _ in range(size + 10)]
    for cookie in cookies:
        assert t.read_ticket(cookie, "r") is not None
    assert len(t._ticket._verified) == size
    assert cookies[0] not in t._ticket._verified


def test_a_cookie_from_a_process_whose_clock_runs_ahead_is_still_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clock skew between machines: a ticket signed where the clock is 30 s ahead
    must not cost its holder the place on a machine that is behind."""
    vid = new_visitor_id()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 30)
    ahead = make(NEW).issue_ticket("r", vid)
    far_ahead = make(NEW).issue_ticket("r", new_visitor_id())
    monkeypatch.setattr(time, "time", lambda: real_time() + tickets_module.CLOCK_SKEW + 60)
    too_far_ahead = make(NEW).issue_ticket("r", new_visitor_id())
    monkeypatch.setattr(time, "time", real_time)
    behind = make(NEW)
    assert behind.read_ticket(ahead, "r") == vid
    assert behind.read_ticket(far_ahead, "r") is not None
    assert behind.read_ticket(too_far_ahead, "r") is None  # not from any sane clock
