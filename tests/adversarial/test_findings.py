"""One test (at least) per finding of the attack on the proxy (issue 13), each against
``serve``'s app in front of the misbehaving origin, over raw sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest

from tests.adversarial.rig import GATED, STRAY, TOKEN, Rig, answers_in, running_rig
from tests.adversarial.visitors import (
    SPELLINGS,
    Visit,
    check,
    gated_for_a_normalising_origin,
    run_batch,
)
from waitingroom.settings import Settings


@pytest.fixture
def rig(make_settings: Callable[..., Settings]) -> Iterator[Rig]:
    with running_rig(make_settings(capacity=2, gated_paths=("/checkout*",),
                                   open_paths=("/static/*",), origin_timeout_seconds=3,
                                   origin_max_connections=4, origin_slot_timeout_seconds=0.5,
                                   session_max_concurrent_requests=2),
                     admitted=2) as rig:
        yield rig


async def _exchange(rig: Rig, raw: bytes, *, hang_up: bool = False) -> bytes:
    """Send ``raw`` on a new connection; everything received until the server closes
    or one whole answer is in (nothing, if ``hang_up``: the visitor vanishes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    try:
        writer.write(raw)
        await writer.drain()
        if hang_up:
            return b""
        received = b""
        async with asyncio.timeout(15):
            while answers_in(received) < 1 and (chunk := await reader.read(65536)):
                received += chunk
        return received
    finally:
        writer.close()


def _get(path: str, token: str, *extra: str, act: str = "ok") -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: shop.test", f"x-token: {token}",
                         f"x-act: {act}", *extra]) + "\r\n\r\n").encode()


def _pass(rig: Rig, index: int = 0) -> tuple[str, str]:
    session = sorted(rig.passes)[index]
    return session, "Cookie: " + rig.passes[session]


# 1. A visitor hangs up mid-body after an early answer: the origin connection, still
# waiting for the body, must never carry the next request (which would be read as
# that body, and a request line hidden in a header as a request of its own).

async def test_a_hang_up_mid_body_never_smuggles_a_request_past_the_gate(rig: Rig) -> None:
    second = (f"GET /static/tok-b2 HTTP/1.1\r\nhost: 127.0.0.1:{rig.origin.port}\r\n"
              "x-pad: ").encode()
    first = ("POST /static/tok-a1 HTTP/1.1\r\nHost: shop.test\r\nx-token: tok-a1\r\n"
             f"x-act: early\r\nContent-Length: {10 + len(second)}\r\n\r\n").encode()
    await _exchange(rig, first + b"0123456789", hang_up=True)
    assert rig.proxy_idle(15)
    answer = await _exchange(rig, _get("/static/tok-b2", "tok-b2",
                                       f"X-Pad: GET {GATED}/smuggled HTTP/1.1"))
    _, cookie = _pass(rig)
    honest = await _exchange(rig, _get(f"{GATED}/tok-c3", "tok-c3", cookie))
    assert rig.settle(15)
    assert b"answer tok-b2 " in answer and b"answer tok-c3 " in honest
    assert not [s for s in rig.origin.seen if "smuggled" in s.path]
    assert not [s for s in rig.origin.seen if s.token == "tok-a1" and s.complete]


# 2. Bytes the origin sends after a finished answer (here: a whole stray answer, late)
# must never become the next visitor's answer.

async def test_stray_bytes_on_an_idle_connection_never_answer_the_next_visitor(
    rig: Rig,
) -> None:
    first = await _exchange(rig, _get("/static/tok-a1", "tok-a1", act="late-extra"))
    assert b"answer tok-a1 " in first
    assert await asyncio.to_thread(rig.origin.stray_sent.wait, 15)
    assert rig.settle(15)
    second = await _exchange(rig, _get("/static/tok-b2", "tok-b2"))
    assert b"answer tok-b2 " in second and STRAY not in second
    assert b"stolen" not in second


@pytest.mark.parametrize("act", ["extra", "short-length", "no-content-body", "switch"])
async def test_an_answer_framed_wrong_spoils_only_its_connection(
    rig: Rig, act: str, caplog: pytest.LogCaptureFixture,
) -> None:
    first = await _exchange(rig, _get("/static/tok-a1", "tok-a1", act=act))
    second = await _exchange(rig, _get("/static/tok-b2", "tok-b2"))
    assert set(TOKEN.findall(first)) <= {b"tok-a1"}
    if act == "switch":  # the proxy forwards no upgrade: a clear 502
        assert first.startswith(b"HTTP/1.1 502 ")
    assert b"answer tok-b2 " in second and STRAY not in second
    # Handled, not crashed: no "Fatal error on transport" or unhandled exception.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


# 3. Every spelling of a gated path is the gated path.

@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_no_spelling_of_a_gated_path_passes_without_a_session(
    rig: Rig, spelling: str,
) -> None:
    plan = Visit("tok-" + spelling.replace("-", ""), "ok", "get", gated=True, admitted=False,
                 spelling=spelling)
    seen_from = len(rig.origin.seen)
    [received] = await run_batch(rig, [plan])
    check(rig, [plan], [received], seen_from)
    assert not [s for s in rig.origin.seen[seen_from:]
                if gated_for_a_normalising_origin(s.path)]
    assert received.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 400 "))  # queue page, or refused


@pytest.mark.parametrize("path", ["/static/..%2fcheckout/x", "/%2fcheckout/x", "/check%00out",
                                  "/static/..%5ccheckout/x", "/%ff/checkout", "/a%zz"])
async def test_paths_with_no_safe_spelling_get_400(rig: Rig, path: str) -> None:
    seen_from = len(rig.origin.seen)
    answer = await _exchange(rig, _get(path, "tok-bad"))
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert rig.origin.seen[seen_from:] == []


async def test_paths_are_forwarded_exactly_as_routed(rig: Rig) -> None:
    await _exchange(rig, _get("/static/./a//b/../c%7e%41%c3%A9?q=%2F", "tok-a1"))
    seen = next(s for s in rig.origin.seen if s.token == "tok-a1")
    assert seen.path == "/static/a/c~A%C3%A9?q=%2F"  # the query is the origin's to read


def test_a_case_blind_origin_gets_gated_paths_in_any_case(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(capacity=1, gated_paths=("/checkout*",), open_paths=("/static/*",),
                             case_insensitive_paths=True)
    with running_rig(settings, admitted=1) as rig:
        answer = asyncio.run(_exchange(rig, _get("/CHECKOUT/tok-upper", "tok-upper")))
        assert rig.settle(15)
    assert not [s for s in rig.origin.seen if s.token == "tok-upper"]
    assert b"answer tok-upper" not in answer
    assert b"x-waitingroom-state: arriving" in answer  # gated: a first visit's page


# 4. Bounded resources: no visitor can take what others need.

async def test_a_full_origin_pool_answers_503_after_the_slot_timeout(rig: Rig) -> None:
    holders = [asyncio.create_task(_exchange(rig, _get(f"/static/tok-h{i}", f"tok-h{i}",
                                                       act="hold"))) for i in range(4)]
    assert await asyncio.to_thread(rig.origin.wait_busy, 4, 15)  # they hold the pool
    late = await _exchange(rig, _get("/static/tok-late", "tok-late"))
    assert late.startswith(b"HTTP/1.1 503 ") and b"retry-after" in late.lower()
    assert all(b"answer tok-h" in answer for answer in await asyncio.gather(*holders))


async def test_one_session_cannot_hold_more_than_its_share(rig: Rig) -> None:
    _, cookie = _pass(rig)
    slow = [asyncio.create_task(_exchange(rig, _get(f"{GATED}/tok-s{i}", f"tok-s{i}", cookie,
                                                    act="hold"))) for i in range(2)]
    assert await asyncio.to_thread(rig.origin.wait_busy, 2, 15)  # both at the origin
    third = await _exchange(rig, _get(f"{GATED}/tok-s3", "tok-s3", cookie))
    _, other = _pass(rig, 1)
    another = await _exchange(rig, _get(f"{GATED}/tok-o1", "tok-o1", other))
    assert third.startswith(b"HTTP/1.1 429 ")
    assert b"answer tok-o1 " in another  # another session is not held up
    assert all(b"answer tok-s" in answer for answer in await asyncio.gather(*slow))


async def test_visitors_who_hang_up_on_a_streamed_answer_free_its_connection(
    rig: Rig,
) -> None:
    async def hang_up_mid_answer(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
        writer.write(_get(f"/static/tok-e{i}", f"tok-e{i}", act="endless"))
        await reader.readuntil(b"answer")  # the answer is streaming
        writer.close()

    await asyncio.gather(*(hang_up_mid_answer(i) for i in range(3)))
    assert await asyncio.to_thread(rig.settle, 15)  # the origin stops writing to nobody
    assert rig.proxy.busy_connections == 0


# 5. Request heads are bounded (431 / 414) before the app sees them.

@pytest.mark.parametrize(("extra", "status"), [
    (("X-Big: " + "b" * 40_000,), b"431"),
    (tuple(f"X-H{i}: v" for i in range(101)), b"431"),
])
async def test_oversized_request_heads_are_refused(
    rig: Rig, extra: tuple[str, ...], status: bytes,
) -> None:
    seen_from = len(rig.origin.seen)
    answer = await _exchange(rig, _get("/static/tok-big", "tok-big", *extra))
    assert answer.startswith(b"HTTP/1.1 " + status + b" ")
    assert rig.origin.seen[seen_from:] == []


async def test_a_long_url_is_refused_with_414(rig: Rig) -> None:
    answer = await _exchange(rig, _get("/static/" + "u" * 9000, "tok-url"))
    assert answer.startswith(b"HTTP/1.1 414 ")


async def test_an_unfinished_huge_head_is_cut_off_at_the_limit(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(b"GET /static/x HTTP/1.1\r\nX-Big: ")
    sent = 0
    try:  # far more than the kernel's buffers on both ends can hold (a few MB)
        while sent < 64_000_000:  # never finished: the server must stop reading
            writer.write(b"b" * 16384)
            await writer.drain()
            sent += 16384
    except ConnectionError:
        pass
    try:
        answer = await reader.read()
    except ConnectionError:  # the refusal may be lost to the reset of unread bytes
        answer = b""
    writer.close()
    assert sent < 64_000_000  # cut off: the server stopped reading and hung up
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 ")


# 6. A chunked upload cut off, or refused part-way, never reaches the origin whole.

async def test_a_cut_or_broken_chunked_upload_never_arrives_whole(rig: Rig) -> None:
    head = ("POST /static/{0} HTTP/1.1\r\nHost: shop.test\r\nx-token: {0}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    await _exchange(rig, head.format("tok-cut").encode() + b"5\r\nhello\r\n", hang_up=True)
    await _exchange(rig, head.format("tok-bad").encode() + b"5\r\nhello\r\nzz\r\n")
    assert rig.settle(15)
    assert not [s for s in rig.origin.seen if s.token in ("tok-cut", "tok-bad") and s.complete]


# 7. A visitor's Connection header cannot strip the room's own headers.

async def test_connection_cannot_name_away_the_session_header(rig: Rig) -> None:
    session, cookie = _pass(rig)
    await _exchange(rig, _get(f"{GATED}/tok-c", "tok-c", cookie,
                              "Connection: keep-alive, x-waitingroom-session, x-request-id"))
    seen = next(s for s in rig.origin.seen if s.token == "tok-c")
    assert seen.session == session


async def test_a_refused_head_gets_one_answer_and_nothing_after_it(rig: Rig) -> None:
    many = "".join(f"X-H{i}: v\r\n" for i in range(101))
    raw = (f"POST /static/x HTTP/1.1\r\nHost: shop.test\r\n{many}Content-Length: 5\r\n\r\n"
           "hello").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(raw)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ") and answer.count(b"HTTP/1.1") == 1


async def test_bodies_are_not_heads_and_each_request_gets_its_own_head_limit(
    rig: Rig,
) -> None:
    body = b"b" * 200_000  # far over the head limit, and no head at all
    post = (b"POST /static/tok-p HTTP/1.1\r\nHost: shop.test\r\nx-token: tok-p\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    head = b"X-Fill: " + b"f" * 20_000  # two of these on one connection: 40 KB in all
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    received = b""
    try:
        for raw in (post, _get("/static/tok-g1", "tok-g1", head.decode()),
                    _get("/static/tok-g2", "tok-g2", head.decode())):
            writer.write(raw)
            async with asyncio.timeout(15):
                wanted = answers_in(received) + 1
                while answers_in(received) < wanted:
                    received += await reader.read(65536)
    finally:
        writer.close()
    for token in (b"tok-p", b"tok-g1", b"tok-g2"):
        assert b"answer " + token + b" " in received


async def test_a_websocket_upgrade_through_the_head_limits_is_refused_cleanly(
    rig: Rig,
) -> None:
    """An upgrade the origin does not accept (this one answers it as plain HTTP) gets
    a 403 through the limited protocol, never a 500, and the next request on a new
    connection is served as usual."""
    upgrade = (b"GET /static/ws HTTP/1.1\r\nHost: shop.test\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    writer.write(upgrade)
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 403 ")
    after = await _exchange(rig, _get("/static/tok-after", "tok-after"))
    assert b"answer tok-after " in after


def test_bodies_past_the_limit_or_stalled_never_reach_the_origin_whole(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(capacity=1, open_paths=("/static/*",), origin_timeout_seconds=1,
                             max_request_body_bytes=1000)

    async def visitors(rig: Rig) -> list[bytes]:
        head = "POST /static/{0} HTTP/1.1\r\nHost: shop.test\r\nx-token: {0}\r\n{1}\r\n\r\n"
        declared = await _exchange(rig, head.format("tok-big", "Content-Length: 2000").encode()
                                   + b"x" * 2000)
        chunked = await _exchange(rig, head.format("tok-chunks", "Transfer-Encoding: chunked")
                                  .encode() + (b"258\r\n" + b"x" * 600 + b"\r\n") * 2
                                  + b"0\r\n\r\n")  # 2 x 600 bytes: over the limit
        stalled = await _exchange(rig, head.format("tok-stall", "Content-Length: 100").encode()
                                  + b"only some")  # and then nothing more, for ever
        return [declared, chunked, stalled]

    with running_rig(settings, admitted=0) as rig:
        declared, chunked, stalled = asyncio.run(visitors(rig))
        assert rig.settle(15)
    assert declared.startswith(b"HTTP/1.1 413 ")
    assert not [s for s in rig.origin.seen if s.token == "tok-big"]  # never sent on
    assert chunked.startswith(b"HTTP/1.1 413 ") or chunked == b""
    assert stalled.startswith(b"HTTP/1.1 400 ")
    assert not [s for s in rig.origin.seen
                if s.token in ("tok-chunks", "tok-stall") and s.complete]
