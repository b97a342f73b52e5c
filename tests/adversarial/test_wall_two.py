"""The wall, round two (issue 28): deadlines for heads, bodies and silent connections,
a network's share of origin connections, gates that see through mounts and root
paths, the room's own headers in any spelling, every pipelined head counted, gated
paths in any case, brand files that cannot lead out of their folder. One test (at
least) per finding, each failing on the code before it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from tests.adversarial.rig import GATED, Rig, answers_in, running_rig
from tests.servers import Browser, serve_in_process
from waitingroom.errors import ConfigError
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.web.renderer import Pages

PATIENCE = 15.0  # a bound on a hung test, not a speed expectation


@pytest.fixture
def rig(make_settings: Callable[..., Settings]) -> Iterator[Rig]:
    """``serve`` at its defaults but for short deadlines and a pool of four."""
    with running_rig(make_settings(capacity=2, gated_paths=("/checkout*",),
                                   open_paths=("/static/*",), origin_max_connections=4,
                                   origin_slot_timeout_seconds=1,
                                   request_head_timeout_seconds=1,
                                   request_body_timeout_seconds=1,
                                   request_body_min_bytes_per_second=1000),
                     admitted=1) as rig:
        yield rig


async def _answers(reader: asyncio.StreamReader, count: int = 1) -> bytes:
    """What arrived once ``count`` whole answers have (within :data:`PATIENCE`)."""
    received = b""
    async with asyncio.timeout(PATIENCE):
        while answers_in(received) < count:
            received += await reader.read(65536)
    return received


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    received = b""
    async with asyncio.timeout(PATIENCE):
        while chunk := await reader.read(65536):
            received += chunk
    return received


# 1. Slow bodies held the origin's connections: the admitted shopper got 503s.

@pytest.mark.parametrize("framing", [
    b"Content-Length: 1000\r\n\r\nx",
    # Chunked bodies were streamed at once (found by the attacker's review below).
    b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n"], ids=["length", "chunked"])
async def test_slow_bodies_hold_no_origin_connection(rig: Rig, framing: bytes) -> None:
    trickles = []
    for n in range(12):  # three times the pool, each a body a byte at a time
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        writer.write(f"POST /static/tok-slow{n} HTTP/1.1\r\nHost: shop.test\r\n"
                     f"x-token: tok-slow{n}\r\n".encode() + framing)
        trickles.append((reader, writer))
    cookie = next(iter(rig.passes.values()))
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(f"GET {GATED}/tok-shopper HTTP/1.1\r\nHost: shop.test\r\n"
                 f"x-token: tok-shopper\r\nCookie: {cookie}\r\n\r\n".encode())
    answer = await _answers(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"answer tok-shopper" in answer
    for reader, writer in trickles:  # cut off at the body's deadline, never forwarded
        await _until_closed(reader)
        writer.close()
    assert not [s for s in rig.origin.seen if s.token.startswith("tok-slow")]


# 2. No deadline on heads, bodies or silent connections.

@pytest.mark.parametrize("sent", [b"", b"GET /static/a HTTP/1.1\r\nHost: sh"],
                         ids=["silent", "slow-head"])
async def test_a_head_not_whole_in_time_gets_408_and_the_connection_ends(
        rig: Rig, sent: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(sent)  # and then nothing more: the rest of the head never comes
    received = await _until_closed(reader)
    writer.close()
    assert received.startswith(b"HTTP/1.1 408 ")


async def test_a_body_slower_than_the_pace_is_cut_off_and_never_reaches_the_origin(
        rig: Rig) -> None:
    """A body larger than what is read whole first (so it streams to the origin), sent
    a few bytes at a time: cut off at its deadline, and the origin never gets it
    whole."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"POST /static/tok-trickle HTTP/1.1\r\nHost: shop.test\r\n"
                 b"x-token: tok-trickle\r\nContent-Length: 200000\r\n\r\nx")
    async with asyncio.timeout(PATIENCE):
        while await _still_open(reader):
            try:
                writer.write(b"xx")  # far below the pace asked of it
            except ConnectionError:
                break
    writer.close()
    assert rig.settle(PATIENCE)
    assert not [s for s in rig.origin.seen if s.token == "tok-trickle" and s.complete]


async def _still_open(reader: asyncio.StreamReader) -> bool:
    """Is the connection still open a moment from now (the pace of a slow sender)?"""
    try:
        return await asyncio.wait_for(reader.read(65536), 0.2) != b""
    except TimeoutError:
        return True
    except ConnectionError:
        return False


# 5. Pipelining escaped the head limit.

async def test_every_pipelined_head_is_held_to_the_limit(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /static/tok-small HTTP/1.1\r\nHost: shop.test\r\nx-token: tok-small"
                 b"\r\n\r\nGET /static/tok-bigx HTTP/1.1\r\nHost: shop.test\r\n"
                 b"x-token: tok-bigx\r\nX-Big: " + b"b" * 88 * 1024 + b"\r\n\r\n")
    received = await _until_closed(reader)
    writer.close()
    assert b"HTTP/1.1 431 " in received
    assert not [s for s in rig.origin.seen if s.token == "tok-bigx"]


# 6. /CHECKOUT was not gated by default.

async def test_a_gated_path_in_another_case_is_gated_at_the_defaults(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /CHECKOUT/tok-upper HTTP/1.1\r\nHost: shop.test\r\n"
                 b"x-token: tok-upper\r\n\r\n")
    received = await _answers(reader)
    writer.close()
    assert b"x-waitingroom-state: arriving" in received
    assert not [s for s in rig.origin.seen if s.token == "tok-upper"]


# 3. Mounted apps and root paths went round the gate (middleware).

def _shop() -> Starlette:
    async def checkout(request: Request) -> PlainTextResponse:
        session = request.headers.get("x-waitingroom-session", "none")
        return PlainTextResponse(f"checkout handler, session {session}")

    async def other(request: Request) -> PlainTextResponse:
        return PlainTextResponse("open page")

    return Starlette(routes=[Route("/checkout/{rest:path}", checkout),
                             Route("/{rest:path}", other)])


def _wsgi_shop(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI shop that echoes what it was told about the session."""
    told = ",".join(f"{k}={v}" for k, v in sorted(environ.items())
                    if "WAITINGROOM" in k.upper())
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"wsgi {environ['PATH_INFO']} {told or 'nothing'}".encode()]


async def test_a_mounted_shop_is_gated_on_the_path_it_routes(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    room = make_room(_shop(), capacity=1, gated_paths=("/checkout*",))
    parent = Starlette(routes=[Mount("/shop", app=room)])
    async with serve_in_process(parent) as url, httpx.AsyncClient(base_url=url) as junk:
        answer = await junk.get("/shop/checkout/a")
        assert answer.headers.get("x-waitingroom-state") == "arriving"
        assert "checkout handler" not in answer.text
        async with Browser(base_url=url) as shopper:
            admitted = await shopper.get("/shop/checkout/a")
            assert admitted.text.startswith("checkout handler, session ")
            assert not admitted.text.endswith("none")


async def test_a_shop_under_a_root_path_is_gated_on_the_path_it_routes(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    room = make_room(_shop(), capacity=1, gated_paths=("/checkout*",))
    async with serve_in_process(room, root_path="/shop") as url, \
            httpx.AsyncClient(base_url=url) as junk:
        answer = await junk.get("/checkout/a")  # the app routes /checkout/a
        assert answer.headers.get("x-waitingroom-state") == "arriving"
        assert "checkout handler" not in answer.text


@pytest.mark.filterwarnings("ignore:starlette.middleware.wsgi is deprecated")
async def test_a_wsgi_shop_is_gated_and_never_hears_the_rooms_headers_from_a_visitor(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    from starlette.middleware.wsgi import WSGIMiddleware  # as shops still use it

    shop = Starlette(routes=[Mount("/", app=WSGIMiddleware(_wsgi_shop))])
    room = make_room(shop, capacity=1, gated_paths=("/checkout*",))
    forged = {"X_WaitingRoom_Session": "forged-wsgi", "x-waitingroom-sold": "9"}
    async with serve_in_process(room) as url, httpx.AsyncClient(base_url=url) as junk:
        open_page = await junk.get("/account", headers=forged)
        assert open_page.text == "wsgi /account nothing"
        assert (await junk.get("/checkout/a")).headers.get(
            "x-waitingroom-state") == "arriving"
        async with Browser(base_url=url) as shopper:
            admitted = await shopper.get("/checkout/a", headers=forged)
        assert admitted.text.startswith("wsgi /checkout/a HTTP_X_WAITINGROOM_SESSION=")
        assert "forged" not in admitted.text and "," not in admitted.text.split("=", 1)[1]


# 4. The room's signal headers crossed the wall, both ways.

async def test_the_rooms_headers_never_cross_the_wall_in_any_spelling(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    heard: list[list[bytes]] = []

    async def origin(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        heard.append([name for name, _ in scope["headers"]])
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"X-WaitingRoom-Sold", b"3"), (b"x_waitingroom_stock", b"0"),
            (b"X-WaitingRoom-Release", b"1"), (b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"origin"})

    room = make_room(origin, capacity=1, gated_paths=("/checkout*",))
    sent = {"X-WaitingRoom-Sold": "5", "X-WaitingRoom-Stock": "0",
            "X-WaitingRoom-Release": "1", "X-WaitingRoom-State": "admitted",
            "X_WaitingRoom_Session": "victim-id"}
    async with serve_in_process(room) as url, Browser(base_url=url) as visitor:
        answer = await visitor.get("/account", headers=sent)  # an open path
        assert answer.text == "origin"
        assert not [h for h in answer.headers if "waitingroom" in h.lower()]
        assert heard[-1] and not [h for h in heard[-1] if b"waitingroom" in h.lower()]
        await visitor.get("/checkout/a", headers=sent)  # admitted, gated
        assert [h for h in heard[-1] if b"waitingroom" in h.lower()] == [
            b"x-waitingroom-session"]


# 7. Brand files followed symlinks out of their folder.

def test_a_brand_file_that_is_a_link_stops_start_up(tmp_path: Path) -> None:
    static = tmp_path / "static"
    static.mkdir()
    os.symlink("/etc/passwd", static / "passwd.css")
    with pytest.raises(ConfigError, match="templates_dir"):
        Pages(templates_dir=str(tmp_path))


# An attacker's review of the above (issue 28, after the first fixes): each a test
# that failed before its fix.

async def test_a_body_sent_after_its_answer_leaves_no_connection_without_a_deadline(
        rig: Rig) -> None:
    """The room answered before the body came (a 404 here; a gated POST's page
    too); the body then came, and the connection stayed open with nothing due."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"POST /_wr/nothing HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 1\r\n\r\n")
    answer = await _answers(reader)
    assert answer.startswith(b"HTTP/1.1 404 ")
    writer.write(b"x")  # the body, late; then nothing more
    rest = await _until_closed(reader)  # closed at the head deadline (1 s here)
    writer.close()
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408 ")


async def test_a_pipelined_request_still_being_answered_is_not_cut_off(rig: Rig) -> None:
    """A second request in the same write, whose answer takes longer than the head
    deadline, got 408 in the middle of being served."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /static/tok-quick HTTP/1.1\r\nHost: shop.test\r\nx-token: tok-quick"
                 b"\r\n\r\nGET /static/tok-hold HTTP/1.1\r\nHost: shop.test\r\n"
                 b"x-token: tok-hold\r\nx-act: hold\r\n\r\n")
    received = await _answers(reader, 2)
    writer.close()
    assert received.count(b"HTTP/1.1 200 ") == 2 and b"408" not in received


async def test_an_unfinished_pipelined_head_is_counted_as_it_comes(rig: Rig) -> None:
    """A small request and, in the same write, a head whose one line runs past the
    limit with no end: refused at once (431), not held until the head deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /static/tok-first HTTP/1.1\r\nHost: shop.test\r\nx-token: tok-first"
                 b"\r\n\r\nGET /static/tok-tail HTTP/1.1\r\nHost: shop.test\r\nX-A: "
                 + b"a" * 40_000)  # past the 32 KiB limit, small enough to be read whole
    received = await _until_closed(reader)
    writer.close()
    assert b"HTTP/1.1 431 " in received and b"408" not in received


async def test_trailers_never_bring_the_rooms_headers_back(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    """Middleware under plain uvicorn: a chunked body's trailers were added to the
    headers list the app held, after the room had stripped its own from it, so a
    forged session header came back for an app that reads headers after the body."""
    async def echo(request: Request) -> PlainTextResponse:
        await request.body()
        return PlainTextResponse(request.headers.get("x-waitingroom-session", "none"))

    room = make_room(Starlette(routes=[Route("/api/x", echo, methods=["POST"])]),
                     gated_paths=("/checkout*",))
    async with serve_in_process(room) as url:
        port = int(url.rpartition(":")[2])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/x HTTP/1.1\r\nHost: shop.test\r\n"
                     b"X-Request-Id: 0123456789abcdef\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(0.3)  # the fault: the trailers come after the app has started
        writer.write(b"0\r\nX-WaitingRoom-Session: victim-id\r\n\r\n")
        received = await _answers(reader)
        writer.close()
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"none")


async def test_a_wsgi_shop_under_a_root_path_with_a_slash_is_gated(
        make_room: Callable[..., WaitingRoomMiddleware]) -> None:
    room = make_room(_shop(), capacity=1, gated_paths=("/checkout*",))
    async with serve_in_process(room, root_path="/shop/") as url, \
            httpx.AsyncClient(base_url=url) as junk:
        answer = await junk.get("/checkout/a")
        assert answer.headers.get("x-waitingroom-state") == "arriving"
        assert "checkout handler" not in answer.text


def test_a_template_that_is_a_link_stops_start_up(tmp_path: Path) -> None:
    os.symlink("/etc/hostname", tmp_path / "base.html")
    with pytest.raises(ConfigError, match="templates_dir"):
        Pages(templates_dir=str(tmp_path))


def test_an_ipv4_client_on_a_dual_stack_socket_is_counted_in_its_own_network() -> None:
    from waitingroom.web.limits import network_of

    assert network_of("::ffff:203.0.113.9") == network_of("203.0.113.9") == "203.0.113.0/24"
    assert network_of("::ffff:198.51.100.1") != network_of("::ffff:203.0.113.9")


async def test_a_visitors_own_forwarded_for_is_not_passed_on_at_the_defaults(
        rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /static/tok-xff HTTP/1.1\r\nHost: shop.test\r\nx-token: tok-xff\r\n"
                 b"X-Forwarded-For: 9.9.9.9\r\n\r\n")
    await _answers(reader)
    writer.close()
    seen = [s for s in rig.origin.seen if s.token == "tok-xff"]
    assert [s.forwarded_for for s in seen] == ["127.0.0.1"]
