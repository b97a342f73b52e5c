"""Security controls seen from outside: page headers (CSP without inline code),
and fuzzed requests that must never get a 5xx, a traceback or an admission."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SECRET, TOKEN
from tests.servers import Browser
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import RedisServer
from waitingroom.visitor.pow import solve, solves
from waitingroom.web.limits import RateLimit

INLINE_CODE = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+\s*=|\sstyle\s*=", re.I)


async def test_every_page_of_the_room_forbids_inline_code_and_framing(
    room: WaitingRoomMiddleware,
) -> None:
    transport = httpx.ASGITransport(app=room)
    pages: dict[str, httpx.Response] = {}

    async def newcomer(path: str) -> httpx.Response:
        async with Browser(transport=transport, base_url="http://shop.test") as c:
            return await c.get(path)

    async with Browser(transport=transport, base_url="http://shop.test") as c:
        for _ in range(2):  # capacity 2: the third sees the queue page
            await newcomer("/x")
        pages["queue"] = await c.get("/checkout")
        pages["status page"] = await c.get("/_wr/status-page")
        pages["invite refused"] = await c.get("/_wr/invite?t=forged")
        pages["dashboard"] = await c.get("/_wr/admin/dashboard")
        await room.engine.rooms.configure("default", capture="on")
        await room.rooms.default.room.refresh_config()
        pages["capture form"] = await c.get("/checkout")
        await room.engine.rooms.configure("default", capture="auto", mode="closed")
        await room.rooms.default.room.refresh_config()
        pages["closed"] = await newcomer("/x")
        asset = await c.get("/_wr/static/queue.js")
    assert "You&#39;re in line" in pages["queue"].text
    assert 'action="/_wr/capture' in pages["capture form"].text
    assert "line is closed" in pages["closed"].text
    for name, page in pages.items():
        policy = page.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, name
        assert "'unsafe-inline'" not in policy, name
        assert page.headers["x-frame-options"] == "DENY", name
        assert page.headers["x-content-type-options"] == "nosniff", name
        assert page.headers["referrer-policy"] == "same-origin", name
        assert INLINE_CODE.search(page.text) is None, name
    assert asset.headers["x-content-type-options"] == "nosniff"


# -- fuzzing -----------------------------------------------------------------------

FUZZ_EXAMPLES = 400
PATHS = ["/", "/checkout", "/checkout/pay", "/_wr/status", "/_wr/events", "/_wr/capture",
         "/_wr/status-page", "/_wr/status-page.json", "/_wr/invite", "/_wr/health",
         "/_wr/admin/room", "/_wr/admin/rooms", "/_wr/admin/rooms/x", "/_wr/admin/audit",
         "/_wr/admin/invites", "/_wr/admin/events", "/_wr/metrics", "/_wr/static/queue.js",
         "/_wr/static/../x", "/_wr/nope", "/_wr/pow", "/_wr/notify", "/_wr/claim",
         "/_wr/resume", "/_wr/resume-link", "/_wr/qr.svg", "/_wr/live"]


class _Recorder:
    """The origin: records the session header of everything that reaches it."""

    def __init__(self) -> None:
        self.sessions: list[bytes | None] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.sessions.append(dict(scope["headers"]).get(b"x-waitingroom-session"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"origin"})


@pytest.fixture(scope="module")
def fuzz_target(redis_server: RedisServer) -> Iterator[tuple[asyncio.Runner, Any]]:
    """A room of capacity 1 whose one session is taken, in a loop kept across examples."""
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    runner = asyncio.Runner()
    origin = _Recorder()
    settings = Settings(redis_url=redis_server.url, secret=(SECRET,), capacity=1,
                        gated_paths=("/checkout*",), admin_token=(f"alice:{TOKEN}",))
    room = WaitingRoomMiddleware(origin, settings=settings)
    hello = runner.run(_call(room, "GET", "/checkout", [], b""))  # a first visit
    cookie = b"; ".join(v.split(b";")[0] for k, v in hello[1] if k == b"set-cookie")
    holder = runner.run(_call(room, "GET", "/checkout", [(b"cookie", cookie)], b""))
    genuine = [v for k, v in holder[1] if k == b"set-cookie"]
    holder_session = origin.sessions.pop()
    yield runner, (room, origin, genuine, holder_session)
    runner.run(room.aclose())
    runner.close()


async def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
                body: bytes, query: bytes = b"") -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One raw ASGI request (bytes a real server would pass through); the answer."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(
                 "utf-8", "surrogateescape"), "query_string": query, "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 5555), "server": ("shop.test", 80)}
    sent = False
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # never disconnects on its own
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    if path == "/_wr/events":  # a stream: its first event is enough
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(app(scope, receive, send), 0.2)
    else:
        await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    return (start["status"], start.get("headers", []),
            b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"))


def _mutated(token: bytes, data: st.DataObject) -> bytes:
    value = token.split(b";")[0]
    position = data.draw(st.integers(0, max(0, len(value) - 1)))
    return value[:position] + data.draw(st.binary(min_size=1, max_size=3)) + value[position + 1:]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_requests_never_get_a_5xx_a_traceback_or_an_admission(
    fuzz_target: tuple[asyncio.Runner, Any], data: st.DataObject,
) -> None:
    runner, (room, origin, genuine, holder_session) = fuzz_target
    method = data.draw(st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"]))
    path = data.draw(st.sampled_from(PATHS) | st.text(min_size=1, max_size=40).map(
        lambda p: "/" + p))
    cookie_value = data.draw(st.binary(max_size=300) | st.sampled_from(genuine).map(
        lambda t: _mutated(t, data)))
    cookie_name = data.draw(st.sampled_from([b"wr_ticket_default", b"wr_pass_default",
                                             b"wr_ticket_other", b"x"]))
    headers = [(b"host", b"shop.test"), (b"cookie", cookie_name + b"=" + cookie_value)]
    headers += data.draw(st.lists(st.tuples(
        st.sampled_from([b"accept", b"x-request-id", b"x-waitingroom-session", b"authorization",
                         b"content-type", b"content-length", b"origin", b"referer"]),
        st.binary(max_size=200)), max_size=5))
    query = data.draw(st.binary(max_size=100) | st.sampled_from(
        [b"room=default", b"room=nowhere", b"room=%00", b"t=x&to=//evil.example"]))
    body = data.draw(st.binary(max_size=2000) | st.sampled_from(
        [b'{"capacity": 5}', b'{"name": "x", "paths": ["/x"], "capacity": 1}', b"csrf=x"]))
    status, answer_headers, answer = runner.run(_call(room, method, path, headers, body, query))
    assert status < 500, (status, answer[:300])
    assert b"Traceback" not in answer
    assert all(v != b"1" for k, v in answer_headers if k == b"x-waitingroom-release")
    location = dict(answer_headers).get(b"location", b"/")
    assert location.startswith(b"/") and not location.startswith((b"//", b"/\\"))
    # Capacity 1 is held by the holder: nobody else may reach the order flow (a mutation
    # that happens to leave the holder's own pass intact is the holder).
    assert set(origin.sessions) <= {None, holder_session}, origin.sessions


# -- new places per network ------------------------------------------------------------

def test_new_place_limit_counts_networks_not_addresses() -> None:
    limit = RateLimit(per_minute=2)
    assert [limit.allow_network(("10.0.0.1", 1)),
            limit.allow_network(("10.0.0.200", 1))] == [True, True]
    assert not limit.allow_network(("10.0.0.7", 1))  # same /24, its burst is spent
    assert limit.allow_network(("10.0.1.7", 1))
    assert [limit.allow_network(("2001:db8:1:2::1", 1)),
            limit.allow_network(("2001:db8:1:ffff::9", 1)),
            limit.allow_network(("2001:db8:1:3::3", 1))] == [True, True, False]  # same /48
    assert RateLimit(per_minute=0).allow_network(("10.0.0.1", 1))
    assert limit.retry_after_seconds == 30


def test_a_slow_limit_still_allows_its_burst() -> None:
    limit = RateLimit(per_minute=5 / 60, burst=3)  # five an hour, three at once
    assert [limit.allow("visitor") for _ in range(4)] == [True, True, True, False]
    assert limit.allow("another")


async def test_a_network_over_its_limit_gets_429_and_no_place_but_holders_carry_on(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(_Recorder(), capacity=1, gated_paths=("/checkout*",),
                     new_places_per_minute_per_network=3)
    crowd = httpx.ASGITransport(app=room, client=("198.51.100.10", 4000))
    elsewhere = httpx.ASGITransport(app=room, client=("203.0.113.5", 4000))
    clients = [Browser(transport=crowd, base_url="http://shop.test")
               for _ in range(4)]
    answers = [await c.get("/checkout") for c in clients]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused.headers["retry-after"] == "20" and "set-cookie" not in refused.headers
    assert "tries again by itself" in refused.text
    assert refused.headers["content-security-policy"]
    as_json = await clients[3].get("/_wr/status")
    assert as_json.status_code == 429 and "too many" in as_json.json()["error"]
    # Those who already hold a place keep polling; another network is unaffected.
    assert (await clients[2].get("/_wr/status")).json()["position"] == 2
    async with Browser(transport=elsewhere, base_url="http://shop.test") as c:
        assert (await c.get("/checkout")).status_code == 200
    for client in clients:
        await client.aclose()


# -- proof of work -----------------------------------------------------------------

def test_a_solution_has_the_leading_zero_bits_asked_for() -> None:
    nonce = solve("a-challenge", 12)
    digest = hashlib.sha256(f"a-challenge:{nonce}".encode()).digest()
    assert digest[0] == 0 and digest[1] >> 4 == 0
    assert solves("a-challenge", nonce, 12)
    assert not solves("a-challenge", "-1", 0) and not solves("a-challenge", "1" * 13, 0)


async def test_a_place_costs_one_solved_challenge(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(_Recorder(), capacity=1, gated_paths=("/checkout*",), pow_difficulty=8)
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as bot, \
            Browser(transport=transport, base_url="http://shop.test") as person:
        page = await bot.get("/checkout")
        assert page.status_code == 200 and 'src="/_wr/static/pow.js"' in page.text
        assert "set-cookie" not in page.headers
        asked = await bot.get("/_wr/status")
        assert asked.status_code == 403 and asked.json()["difficulty"] == 8
        assert (await room.engine.rooms.counts("default")).waiting == 0  # no place yet
        challenge = asked.json()["challenge"]
        nonce = solve(challenge, 8)

        earned = await bot.post("/_wr/pow", data={"challenge": challenge, "nonce": nonce})
        assert earned.status_code == 200 and earned.json()["state"] == "admitted"
        again = await person.post("/_wr/pow", json={"challenge": challenge,
                                                      "nonce": nonce})
        assert again.status_code == 403  # one challenge, one place
        wrong = (await person.get("/_wr/status")).json()["challenge"]
        unsolved = next(str(n) for n in range(10**6) if not solves(wrong, str(n), 8))
        assert (await person.post("/_wr/pow", data={"challenge": wrong,
                                                    "nonce": unsolved})).status_code == 403
        forged = wrong[:-2] + ("AA" if wrong[-2:] != "AA" else "BB")
        assert (await person.post("/_wr/pow", data={"challenge": forged,
                                                    "nonce": solve(forged, 8)})
                ).status_code == 403
        assert (await person.get("/_wr/pow")).status_code == 405
        joined = await person.post("/_wr/pow", data={"challenge": wrong,
                                                     "nonce": solve(wrong, 8)})
        assert joined.json()["position"] == 1
        assert (await person.get("/_wr/status")).json()["position"] == 1
