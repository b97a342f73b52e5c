"""The middleware in-process (httpx.ASGITransport) around a tiny raw ASGI origin,
with a real Redis behind it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from tests.conftest import SECRET
from tests.servers import Browser, Origin, serve_in_process
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tickets import TICKET_SALT, Tickets
from waitingroom.web.renderer import Pages, RoomLook
from waitingroom.web.templates import Brand

ROOM = "default"


@pytest.fixture
def origin() -> Origin:
    return Origin()


@pytest.fixture
def room(origin: Origin, make_room: Callable[..., WaitingRoomMiddleware]
         ) -> WaitingRoomMiddleware:
    return make_room(origin, capacity=1, open_paths=("/static/*", "/login"))


@pytest.fixture
def visitor(room: WaitingRoomMiddleware) -> Callable[..., httpx.AsyncClient]:
    """A new browser (its own cookie jar) pointed at the waiting room."""

    def make(base_url: str = "http://shop.test", **kwargs: Any) -> httpx.AsyncClient:
        return Browser(transport=httpx.ASGITransport(app=room), base_url=base_url,
                                 **kwargs)

    return make


def ticket_cookie(client: httpx.AsyncClient) -> str:
    return client.cookies[f"wr_ticket_{ROOM}"]


async def test_first_visitor_walks_in_with_a_session_header(
    visitor: Callable[..., httpx.AsyncClient], origin: Origin
) -> None:
    async with visitor() as alice:
        response = await alice.get("/checkout")
    assert response.text == "origin:/checkout"
    _path, session = origin.seen[-1]
    assert session is not None and len(session) == 12
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"wr_pass_{ROOM}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


async def test_cookies_are_secure_over_tls(visitor: Callable[..., httpx.AsyncClient]) -> None:
    async with visitor("https://shop.test") as alice:
        response = await alice.get("/checkout")
    assert "; Secure" in response.headers["set-cookie"]


async def test_the_next_visitor_waits_and_is_told_the_truth(
    visitor: Callable[..., httpx.AsyncClient], origin: Origin
) -> None:
    async with visitor() as alice, visitor() as bob, visitor() as carol:
        await alice.get("/checkout")
        page = await bob.get("/checkout")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert '<p class="pos" id="wr-position">1</p>' in page.text
        as_json = await carol.get("/checkout", headers={"Accept": "application/json"})
        body = as_json.json()
        assert body == {"room": ROOM, "state": "queued", "position": 2, "eta_seconds": None,
                        "message": None, "poll_after_seconds": 2}
        assert as_json.headers["retry-after"] == "2"
        status = await bob.get("/_wr/status")
        assert status.json()["position"] == 1
    assert [path for path, _ in origin.seen] == ["/checkout"]


async def test_release_header_admits_the_next_in_line(
    visitor: Callable[..., httpx.AsyncClient], origin: Origin
) -> None:
    async with visitor() as alice, visitor() as bob:
        await alice.get("/checkout")
        await bob.get("/checkout")
        done = await alice.get("/done")
        assert "x-waitingroom-release" not in done.headers  # the origin's signal stays here
        assert f"wr_pass_{ROOM}=;" in done.headers["set-cookie"]
        assert (await bob.get("/_wr/status")).json()["state"] == "admitted"
        assert (await bob.get("/checkout")).text == "origin:/checkout"
        # Alice's order is finished: she is back in line, behind nobody but Bob's session.
        again = await alice.get("/checkout", headers={"Accept": "application/json"})
        assert again.json()["state"] == "queued"
    sessions = {session for _, session in origin.seen}
    assert len(sessions) == 2


async def test_tabs_share_one_place(visitor: Callable[..., httpx.AsyncClient]) -> None:
    async with visitor() as alice, visitor() as bob:
        await alice.get("/checkout")
        first = (await bob.get("/_wr/status")).json()
        for _ in range(3):
            assert (await bob.get("/checkout", headers={"Accept": "application/json"})
                    ).json()["position"] == first["position"]


@pytest.mark.parametrize("forge", ["tampered", "foreign room", "expired", "pass as ticket",
                                   "garbage", "oversized"])
async def test_bad_tickets_get_a_fresh_place_at_the_back(
    visitor: Callable[..., httpx.AsyncClient], forge: str
) -> None:
    tickets = Tickets([SECRET], ticket_max_age=86_400, pass_max_age=1800)
    async with visitor() as alice, visitor() as bob, visitor() as carol:
        await alice.get("/checkout")
        await bob.get("/checkout")
        genuine = ticket_cookie(bob)
        bad = {
            "tampered": genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB"),
            "foreign room": tickets.issue_ticket("other-room", "abcdefghijkl"),
            "expired": _old_ticket(ROOM, "abcdefghijkl"),
            "pass as ticket": tickets.issue_pass(ROOM, "abcdefghijkl"),
            "garbage": "\u00ff\u00fe not base64",
            "oversized": "x" * 5000,
        }[forge]
        raw_cookie = f"wr_ticket_{ROOM}={bad}".encode("latin-1")
        response = await carol.get("/checkout", headers=[(b"accept", b"application/json"),
                                                         (b"cookie", raw_cookie)])
        assert response.status_code == 429  # a script's call waits: Retry-After says when
        assert response.json()["position"] == 2  # behind Bob, not in anybody's place
        assert ticket_cookie(carol) != bad


async def test_forged_pass_is_not_admitted(visitor: Callable[..., httpx.AsyncClient]) -> None:
    tickets = Tickets(["another-secret-entirely"], ticket_max_age=86_400, pass_max_age=1800)
    async with visitor() as alice, visitor() as mallory:
        await alice.get("/checkout")
        mallory.cookies.set(f"wr_pass_{ROOM}", tickets.issue_pass(ROOM, "abcdefghijkl"),
                            domain="shop.test")
        response = await mallory.get("/checkout", headers={"Accept": "application/json"})
        assert response.json()["state"] == "queued"


async def test_rotated_secrets_still_verify(
    origin: Origin, make_room: Callable[..., WaitingRoomMiddleware]
) -> None:
    old = Tickets([SECRET], ticket_max_age=86_400, pass_max_age=1800)
    middleware = make_room(origin, capacity=1, secret=("a-brand-new-secret-key", SECRET))
    transport = httpx.ASGITransport(app=middleware)
    async with Browser(transport=transport, base_url="http://shop.test") as a, \
            Browser(transport=transport, base_url="http://shop.test") as b:
        await a.get("/checkout")
        await b.get("/checkout")
        status = (await b.get("/_wr/status")).json()
        b.cookies.set(f"wr_ticket_{ROOM}", old.issue_ticket(ROOM, "abcdefghijkl"),
                      domain="shop.test")
        rejoined = (await b.get("/_wr/status")).json()
        assert status["position"] == 1 and rejoined["position"] == 2
        assert "wr_ticket" not in (await b.get("/_wr/status")).headers.get("set-cookie", "")


async def test_open_paths_and_health_take_no_place(
    visitor: Callable[..., httpx.AsyncClient], room: WaitingRoomMiddleware, origin: Origin
) -> None:
    async with visitor() as alice, visitor() as bob:
        await alice.get("/checkout")
        assert (await bob.get("/login")).text == "origin:/login"
        assert (await bob.get("/static/app.css")).text == "origin:/static/app.css"
        health = await bob.get("/_wr/health")
        assert health.json() == {"status": "ok", "room": ROOM}
        assert "set-cookie" not in health.headers
    counts = await room.engine.rooms.counts(ROOM)
    assert (counts.waiting, counts.active) == (0, 1)


async def test_visitors_cannot_claim_a_session_themselves(
    visitor: Callable[..., httpx.AsyncClient], origin: Origin
) -> None:
    async with visitor() as alice, visitor() as mallory:
        await alice.get("/checkout")
        session = origin.seen[-1][1]
        assert session is not None
        forged = {"X-WaitingRoom-Session": session}
        await mallory.get("/login", headers=forged)
        assert origin.seen[-1] == ("/login", None)
        response = await mallory.get("/checkout", headers={**forged, "Accept": "application/json"})
        assert response.json()["state"] == "queued"


async def status_until(client: httpx.AsyncClient, state: str) -> dict[str, Any]:
    """Poll /_wr/status until it reports ``state``; live config must show within ~1 s."""
    for _ in range(60):
        status: dict[str, Any] = (await client.get("/_wr/status")).json()
        if status["state"] == state:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {state!r}; last {status}")


async def test_pause_and_open_modes(
    visitor: Callable[..., httpx.AsyncClient], room: WaitingRoomMiddleware
) -> None:
    async with visitor() as alice, visitor() as bob:
        await alice.get("/checkout")
        await bob.get("/checkout")
        await room.engine.rooms.configure(ROOM, paused=True, message="Back in 5 minutes")
        status = await status_until(bob, "paused")
        assert (status["position"], status["message"]) == (1, "Back in 5 minutes")
        await room.engine.rooms.configure(ROOM, paused=False, mode="open")
        await status_until(bob, "open")
        assert (await bob.get("/checkout")).text == "origin:/checkout"


async def test_redis_down_gets_a_retry_page_not_an_error(
    origin: Origin, make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    from waitingroom.tools.redis_server import free_port

    middleware = make_room(origin, redis_url=f"redis://127.0.0.1:{free_port()}/0",
                           open_paths=("/static/*",))
    transport = httpx.ASGITransport(app=middleware)
    async with Browser(transport=transport, base_url="http://shop.test") as c:
        page = await c.get("/checkout")
        assert page.status_code == 503 and "tries again" in page.text
        assert page.headers["retry-after"] == "5"
        assert (await c.get("/_wr/status")).status_code == 503
        assert (await c.get("/_wr/status?room=other")).status_code == 503
        assert (await c.get("/_wr/health")).json()["status"] == "unavailable"
        assert (await c.get("/static/logo.png")).text == "origin:/static/logo.png"
    assert origin.seen == [("/static/logo.png", None)]


async def test_queue_page_with_its_assets_is_small(
    visitor: Callable[..., httpx.AsyncClient]
) -> None:
    async with visitor() as alice, visitor() as bob:
        await alice.get("/checkout")
        page = await bob.get("/checkout")
        css = await bob.get("/_wr/static/queue.css")
        js = await bob.get("/_wr/static/queue.js")
        assert css.headers["content-type"].startswith("text/css")
        assert js.headers["content-type"].startswith("text/javascript")
        assert (await bob.get("/_wr/static/nope.js")).status_code == 404
    weight = len(page.content) + len(css.content) + len(js.content)
    assert weight < 15_000, weight
    assert "http://" not in page.text and "https://" not in page.text  # no external CDN


async def test_message_is_escaped(visitor: Callable[..., httpx.AsyncClient],
                                  room: WaitingRoomMiddleware) -> None:
    await room.engine.rooms.seed(ROOM, capacity=1, message="<script>alert(1)</script>")
    async with visitor() as alice, visitor() as bob:
        await alice.get("/checkout")
        page = await bob.get("/checkout")
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text


def test_queue_page_has_a_no_javascript_refresh() -> None:
    from waitingroom.status import Status

    html = Pages().queue(Status(ROOM, "queued", position=7, poll_after_seconds=4)).decode()
    assert '<noscript><meta http-equiv="refresh" content="4"></noscript>' in html


def test_queue_pages_built_from_one_frame_carry_each_visitors_own_values() -> None:
    from waitingroom.status import Status

    def page(position: int, eta: int | None, here: str = "/checkout") -> str:
        status = Status(ROOM, "queued", position=position, eta_seconds=eta,
                        poll_after_seconds=2 + position // 100)
        return queue_pages.queue(status, here=here).decode()

    queue_pages = Pages()

    first, second = page(7, None), page(700, 600)
    assert '<p class="pos" id="wr-position">7</p>' in first
    assert '<p class="pos" id="wr-position">700</p>' in second
    assert 'content="2"' in first and 'content="9"' in second
    assert "8 to 12 minutes" in second and "8 to 12" not in first

    odd = page(3, None, here="/p\x00q")  # a decoded %00 in the path
    assert '<p class="pos" id="wr-position">3</p>' in odd and "\x00" not in odd


def test_the_queue_page_names_the_shop_and_says_how_long_a_session_lasts() -> None:
    from waitingroom.status import Status

    look = RoomLook(session_idle_seconds=600, session_max_seconds=1800)
    shop = Pages(brand=Brand(shop_name="Tom & Jo's <b>"))
    html = shop.queue(Status(ROOM, "queued", position=3), look=look, lang="fr").decode()
    assert "<title>Vous êtes dans la file \u2013 Tom &amp; Jo&#39;s &lt;b&gt;</title>" in html
    assert "Jo's <b>" not in html
    assert "jusqu&#39;à 30 minutes" in html and "10 minutes d&#39;inactivité" in html
    one = Pages().queue(Status(ROOM, "queued", position=3), lang="de",
                        look=RoomLook(session_idle_seconds=60, session_max_seconds=60)).decode()
    assert "bis zu 1 Minute Zeit" in one and "nach 1 Minute ohne" in one  # singular


def _old_ticket(room: str, visitor_id: str) -> str:
    class LongAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 10 * 86_400

    serializer = URLSafeTimedSerializer([SECRET], salt=TICKET_SALT, signer=LongAgo,
                                        signer_kwargs={"digest_method": hashlib.sha256})
    return serializer.dumps([room, visitor_id])


def test_status_json_has_the_contract_fields() -> None:
    from waitingroom.status import Status

    body = json.loads(Status(ROOM, "queued", position=3, eta_seconds=40).to_json())
    assert set(body) >= {"room", "state", "position", "eta_seconds", "message"}


async def test_an_ended_session_let_straight_back_in_keeps_its_new_pass(
    visitor: Callable[..., httpx.AsyncClient], room: WaitingRoomMiddleware, origin: Origin,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from waitingroom.engine import room_keys

    # This process asks Redis about the session every time, not once a second.
    monkeypatch.setattr("waitingroom.room.sessions.SESSION_CHECK_SECONDS", 0.0)

    async with visitor() as alice:
        await alice.get("/checkout")
        session = origin.seen[-1][1]
        assert session is not None
        await room.engine.redis.zadd(room_keys(ROOM)[2], {session: 0})  # idled out long ago
        again = await alice.get("/checkout")  # the room is free: straight back in
        assert again.text == "origin:/checkout"
        passes = [c for c in again.headers.get_list("set-cookie")
                  if c.startswith(f"wr_pass_{ROOM}=")]
        assert passes and not passes[-1].startswith(f"wr_pass_{ROOM}=;")
        assert (await alice.get("/checkout")).text == "origin:/checkout"
    assert origin.seen[-1] == ("/checkout", session)


async def test_a_scripts_gated_call_gets_json_it_can_act_on_never_a_page(
    make_settings: Callable[..., Settings], origin: Origin,
) -> None:
    """fetch() and XHR calls are told apart from page loads by the headers browsers
    send (no Accept needed): 429 + Retry-After and the status JSON by default, the
    status ops choose otherwise; a page load still gets the page."""
    for status, settings in ((429, make_settings(capacity=1)),
                             (503, make_settings(capacity=1, api_wait_status=503))):
        room = WaitingRoomMiddleware(origin, settings=settings)
        await room.engine.rooms.clear(ROOM)  # a new line each round
        try:
            async with serve_in_process(room) as url, Browser(base_url=url) as a, \
                    Browser(base_url=url) as b:
                await a.get("/checkout")
                for scripted in ({"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
                                 {"X-Requested-With": "XMLHttpRequest"},
                                 {"Accept": "application/json"}):
                    answer = await b.get("/checkout", headers=scripted)
                    assert answer.status_code == status, scripted
                    assert answer.headers["x-waitingroom-state"] == "queued"
                    assert answer.headers["retry-after"] == "2"
                    assert answer.json()["position"] == 1
                page = await b.get("/checkout", headers={"Sec-Fetch-Dest": "document",
                                                         "Sec-Fetch-Mode": "navigate"})
                assert page.status_code == 200 and "wr-card" in page.text
                await room.engine.rooms.configure("default", capture="on")
                await room.rooms.default.room.refresh_config()
                captured = await b.get("/checkout", headers={"Sec-Fetch-Dest": "empty"})
                assert captured.headers["x-waitingroom-state"] == "capture"
                assert captured.json()["state"] == "capture"  # not the form's HTML
                await room.engine.rooms.configure("default", capture="auto")
        finally:
            await room.aclose()


async def test_a_page_the_room_edits_is_never_sent_by_path(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    """An app offered http.response.pathsend (Starlette's FileResponse takes it) would
    send a page the room never sees, its length then wrong: not offered for pages the
    room adds its beacon to, offered as before otherwise."""
    offered: list[set[str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        offered.append(set(scope.get("extensions", {})))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"<p>page</p>"})

    room = make_room(app, capacity=1)
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as shopper:
        await shopper.get("/checkout")
        cookie = "; ".join(f"{k}={v}" for k, v in shopper.cookies.items())
    for dest in (b"document", b"image"):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/checkout",
                 "raw_path": b"/checkout", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"shop.test"), (b"cookie", cookie.encode()),
                             (b"sec-fetch-dest", dest)],
                 "client": ("127.0.0.1", 1), "server": ("shop.test", 80),
                 "extensions": {"http.response.pathsend": {}}}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            pass

        await room(scope, receive, send)
    assert offered[-2:] == [set(), {"http.response.pathsend"}]
