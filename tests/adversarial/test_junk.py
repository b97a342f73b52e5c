"""Junk at the shipped defaults (issue 27): a client that never sends the room's cookie
back takes no place and no slot however often it asks; one that does is held to its
network's share; a handshake takes nothing; details left from one network are bounded.
Each against the middleware in process with a real Redis, the client's address set."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.servers import in_process, serve_in_process
from waitingroom.engine import room_keys
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.web import limits

KEYS = room_keys("default")
JUNK = ("203.0.113.7", 40000)
"""The attacker's address; real shoppers come from other networks."""


@pytest.fixture
def room(make_room: Callable[..., WaitingRoomMiddleware]) -> WaitingRoomMiddleware:
    """The room at its shipped defaults, but for the capacity and its gated paths."""
    return make_room(capacity=3, gated_paths=("/checkout*",))


@pytest.fixture
def still_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-minute limits read a clock held mid-minute: a test that happens to run
    across a minute's end (its last minute's counts fading) counts the same."""
    monkeypatch.setattr(limits, "time", SimpleNamespace(monotonic=lambda: 1_000 * 60 + 30.0))


def client(room: WaitingRoomMiddleware, address: tuple[str, int] = JUNK, *,
           browser: bool = False, **kwargs: Any) -> httpx.AsyncClient:
    """A client at ``address``: a browser keeps cookies, junk throws them away."""
    return in_process(room, address=address, browser=browser, **kwargs)


async def junk(room: WaitingRoomMiddleware, path: str, count: int, **headers: str) -> set[int]:
    """``count`` requests that never send a cookie back; the statuses they got."""
    statuses = set()
    async with client(room) as bot:
        for _ in range(count):
            bot.cookies.clear()
            statuses.add((await bot.get(path, headers=headers)).status_code)
    return statuses


async def held(redis_url: str) -> tuple[int, int]:
    """(sessions and slots held, arrival numbers handed out) in Redis."""
    async with aioredis.Redis.from_url(redis_url) as r:
        return await r.zcard(KEYS.active), int(await r.get(KEYS.seq) or 0)


async def test_cookieless_requests_take_no_slot_and_the_shop_stays_open(
        room: WaitingRoomMiddleware, redis_url: str) -> None:
    assert await junk(room, "/checkout/a", 300) == {200}
    assert await junk(room, "/checkout/a", 100, accept="application/json") == {429}
    assert await junk(room, "/_wr/status", 100) == {200}
    assert await held(redis_url) == (0, 0)
    for n in range(3):  # real shoppers still walk straight in
        async with client(room, (f"198.51.{n}.1", 1), browser=True) as shopper:
            answer = await shopper.get("/checkout/a")
            assert answer.text == "origin:/checkout/a"
    assert await held(redis_url) == (3, 3)  # each took a number, walking straight in


async def test_a_first_visit_costs_one_round_trip_and_says_what_it_needs(
        room: WaitingRoomMiddleware) -> None:
    async with client(room, ("198.51.100.1", 1)) as shopper:
        first = await shopper.get("/checkout/a", headers={"accept": "text/html"})
        assert first.status_code == 200 and "/_wr/static/arrive.js" in first.text
        assert first.headers["x-waitingroom-state"] == "arriving"
        assert first.headers["cache-control"] == "no-store"
        assert "HttpOnly" in first.headers["set-cookie"]
        assert (await shopper.get("/checkout/a")).text == "origin:/checkout/a"
    async with client(room, ("198.51.100.2", 1)) as api:
        status = await api.get("/checkout/a", headers={"accept": "application/json"})
        assert status.status_code == 429 and status.json()["state"] == "arriving"
        assert status.json()["position"] is None and status.headers["retry-after"] == "1"
        assert (await api.get("/checkout/a")).text == "origin:/checkout/a"


async def test_junk_moves_a_real_shoppers_place_by_nothing(
        room: WaitingRoomMiddleware, redis_url: str) -> None:
    shoppers = [client(room, (f"198.51.{n}.1", 1), browser=True) for n in range(5)]
    for shopper in shoppers:  # three in, two waiting
        await shopper.get("/checkout/a")
    assert await junk(room, "/checkout/a", 500) == {200}
    async with client(room, ("192.0.2.1", 1), browser=True) as newcomer:
        answer = await newcomer.get("/checkout/a", headers={"accept": "application/json"})
    assert answer.json()["state"] == "queued" and answer.json()["position"] == 3
    for shopper in shoppers:
        await shopper.aclose()


async def test_a_handshake_without_a_live_session_is_refused_and_takes_nothing(
        room: WaitingRoomMiddleware, redis_url: str) -> None:
    async with serve_in_process(room) as url:
        ws = url.replace("http://", "ws://")
        for _ in range(20):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws + "/checkout/live", open_timeout=5):
                    pass
            assert refused.value.response.status_code == 403
        with pytest.raises(InvalidStatus):  # a hello or a ticket is not a session
            async with connect(ws + "/checkout/live", open_timeout=5,
                               additional_headers={"Cookie": "wr_ticket_default=forged"}):
                pass
    assert await held(redis_url) == (0, 0)


@pytest.mark.usefixtures("still_minute")
async def test_a_network_that_keeps_cookies_is_held_to_its_share_of_new_places(
        room: WaitingRoomMiddleware, redis_url: str) -> None:
    """A bot farm behind one /24 that does return cookies: the floor (30 a minute per
    process) and a tenth past it (places past a floor stay under a tenth of those within
    the floors) while the room is quiet; other networks are not held back by it."""
    refused = 0
    for n in range(80):
        async with client(room, (f"203.0.113.{n}", 1), browser=True) as bot:
            refused += (await bot.get("/checkout/a")).status_code == 429
    assert refused == 47
    _, numbers = await held(redis_url)
    assert numbers == 33  # three of them walked straight in
    async with client(room, ("198.51.100.9", 1), browser=True) as shopper:
        answer = await shopper.get("/checkout/a", headers={"accept": "application/json"})
    assert answer.json()["position"] == 31


@pytest.mark.usefixtures("still_minute")
async def test_details_left_from_one_network_are_bounded(
        room: WaitingRoomMiddleware, redis_url: str) -> None:
    """Fresh visitors from one network posting the capture form and the interest form:
    the floor (20 a minute per process, both forms together) and a tenth past it are
    stored, the rest get the form back with a 429; another network is not held back."""
    async def leave(address: tuple[str, int], path: str) -> int:
        async with client(room, address, browser=True) as visitor:
            form = await visitor.get(path, headers={"accept": "application/json"})
            body = {"csrf": form.json()["csrf"], "name": "Ann", "email": "a@example.com",
                    "product": "phone", "consent": "yes"}
            return (await visitor.post(path, json=body)).status_code

    codes = [await leave(JUNK, "/_wr/capture") for _ in range(15)]
    codes += [await leave(JUNK, "/_wr/interest") for _ in range(15)]
    assert codes.count(200) == 22 and codes.count(429) == 8
    assert await leave(("198.51.100.1", 1), "/_wr/capture") == 200
    async with aioredis.Redis.from_url(redis_url) as r:
        assert await r.xlen(KEYS.captures) + await r.xlen(KEYS.interest) == 23


@pytest.mark.usefixtures("still_minute")
async def test_a_bot_farm_on_many_networks_gets_its_floors_and_no_more(
        room: WaitingRoomMiddleware, redis_url: str) -> None:
    """Twelve networks with nobody else's arrivals to hide among: their floors and a
    tenth of those, however many networks (the farm's own places past the floors do not
    count as a crowd to take a share of, or the share would grow without end)."""
    taken = 0
    for n in range(12 * 40):
        network = n % 12
        async with client(room, (f"203.0.{network}.{n // 12 % 250 + 1}", 1),
                          browser=True) as bot:
            taken += (await bot.get("/checkout/a")).status_code != 429
    assert taken == 12 * 30 + 36
