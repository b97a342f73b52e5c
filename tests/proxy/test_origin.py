"""The proxy's origin connections over real sockets: an origin scripted byte by byte
(asyncio streams on loopback) behind the proxy under uvicorn, a real HTTP client in
front. Keep-alive, closed connections, bodiless and close-delimited answers,
interim answers and broken origins."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trustme

from tests.servers import Browser, serve_in_process
from waitingroom.engine import BreakerPolicy, Engine
from waitingroom.proxy.headers import request_head
from waitingroom.proxy.origin import OriginPool
from waitingroom.proxy.proxy import OriginProxy
from waitingroom.room.breaker import BreakerClient


@dataclass
class Received:
    """A request as the scripted origin read it."""

    connection: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedOrigin:
    """Answers each request with ``answer(request)`` (raw bytes; None: close the
    connection without a word) and logs what it read."""

    answer: Callable[[Received], bytes | None]
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while request := await _read_request(reader, number):
                self.received.append(request)
                reply = self.answer(request)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    break
        finally:
            writer.close()


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    method, target, _ = line.split(" ")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
    return Received(connection, method, target, headers, body)


def ok(body: bytes, *extra: str) -> bytes:
    """A 200 answer with a length."""
    head = ["HTTP/1.1 200 OK", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def proxied(answer: Callable[[Received], bytes | None], *,
                  tls: ssl.SSLContext | None = None, ca_file: str = "",
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, ScriptedOrigin]]:
    """A client of an :class:`OriginProxy` (under uvicorn) in front of a scripted origin
    (over ``tls`` if given, the proxy trusting ``ca_file``)."""
    origin = ScriptedOrigin(answer)
    server = await asyncio.start_server(origin.handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    scheme = "https" if tls else "http"
    proxy = OriginProxy(f"{scheme}://127.0.0.1:{port}", read_timeout=5, ca_file=ca_file)
    try:
        async with serve_in_process(proxy) as url, \
                Browser(base_url=url, timeout=10) as client:
            yield client, origin
    finally:
        await proxy.aclose()
        server.close()


async def test_one_connection_serves_request_after_request() -> None:
    async with proxied(lambda r: ok(f"{r.connection}:{r.target}".encode())) as (client, origin):
        answers = [(await client.get(f"/page/{i}?q=1")).text for i in range(5)]
    assert answers == [f"1:/page/{i}?q=1" for i in range(5)]
    assert origin.connections == 1


async def test_the_origin_sees_its_own_host_and_where_the_request_came_from() -> None:
    async with proxied(lambda r: ok(b"")) as (client, origin):
        await client.get("/", headers={"Host": "shop.example", "Expect": "100-continue"})
    seen = origin.received[0].headers
    assert seen["host"].startswith("127.0.0.1:")
    assert seen["x-forwarded-host"] == "shop.example"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "expect" not in seen  # the body is sent at once; no 100 Continue is wanted


async def test_an_answer_saying_close_is_not_reused() -> None:
    def answer(request: Received) -> bytes:
        return ok(str(request.connection).encode(), "connection: close")

    async with proxied(answer) as (client, _):
        answers = [(await client.get("/")).text for _ in range(3)]
    assert answers == ["1", "2", "3"]


async def test_a_kept_connection_the_origin_dropped_is_replaced_for_safe_requests() -> None:
    """The origin hangs up on every second request of a connection without a word, as
    one does whose idle timeout fired as the request arrived. A GET goes again on a new
    connection; a POST (which may have had an effect) gets a 502 and is not repeated."""

    def answer(request: Received) -> bytes | None:
        served = sum(r.connection == request.connection for r in origin.received)
        return ok(request.method.encode()) if served == 1 else None

    async with proxied(answer) as (client, origin):
        first, again = await client.get("/"), await client.get("/")
        post = await client.post("/order")
    assert (first.text, again.text) == ("GET", "GET")
    assert [r.connection for r in origin.received[:3]] == [1, 1, 2]
    assert post.status_code == 502
    assert [r.method for r in origin.received].count("POST") == 1


async def test_head_and_no_content_answers_end_with_their_headers() -> None:
    def answer(request: Received) -> bytes:
        if request.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
        if request.target == "/empty":
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return ok(b"after")

    async with proxied(answer) as (client, _):
        head = await client.head("/file")
        empty = await client.get("/empty")
        after = await client.get("/next")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "10", b"")
    assert (empty.status_code, empty.content) == (204, b"")
    assert after.text == "after"


async def test_an_answer_without_length_ends_when_the_origin_closes() -> None:
    body = b"streamed until the end " * 1000
    async with proxied(lambda r: b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + body
                       ) as (client, _):
        response = await client.get("/")
    assert response.content == body


async def test_interim_answers_are_skipped() -> None:
    async with proxied(lambda r: b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
                       + ok(b"final")) as (client, _):
        response = await client.get("/")
    assert (response.status_code, response.text) == (200, "final")


async def test_an_origin_that_does_not_speak_http_gets_a_502() -> None:
    async with proxied(lambda r: b"SSH-2.0-OpenSSH\r\n\r\n") as (client, _):
        response = await client.get("/")
    assert response.status_code == 502


async def test_a_body_cut_short_cuts_the_visitor_off() -> None:
    async with proxied(lambda r: None if r.target == "/never" else
                       b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 10
                       ) as (client, _):
        with pytest.raises(httpx.HTTPError):  # not a short body passed off as whole
            await client.get("/")


async def test_a_chunked_upload_arrives_whole_and_chunked() -> None:
    async def upload() -> AsyncIterator[bytes]:
        for piece in (b"first ", b"second ", b"third"):
            yield piece

    async with proxied(lambda r: ok(r.body)) as (client, origin):
        response = await client.post("/upload", content=upload())
    assert response.text == "first second third"
    assert origin.received[0].headers["transfer-encoding"] == "chunked"
    assert "content-length" not in origin.received[0].headers


@pytest.fixture
def internal_ca(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    """An origin's TLS context signed by a private authority, and that authority's
    certificate as a PEM file."""
    authority = trustme.CA()
    origin_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(origin_tls)
    ca_file = tmp_path / "internal-ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return origin_tls, str(ca_file)


async def test_an_https_origin_is_reached_when_its_authority_is_trusted(
    internal_ca: tuple[ssl.SSLContext, str],
) -> None:
    origin_tls, ca_file = internal_ca
    async with proxied(lambda r: ok(b"over tls"), tls=origin_tls, ca_file=ca_file
                       ) as (client, _):
        answers = [(await client.get("/")).text for _ in range(2)]
    assert answers == ["over tls", "over tls"]


async def test_an_https_origin_with_an_unknown_authority_is_never_sent_the_request(
    internal_ca: tuple[ssl.SSLContext, str],
) -> None:
    origin_tls, _ = internal_ca
    async with proxied(lambda r: ok(b"secret"), tls=origin_tls) as (client, origin):
        response = await client.get("/")
    assert response.status_code == 502
    assert origin.received == []


async def test_the_breaker_health_check_trusts_the_same_authority(
    internal_ca: tuple[ssl.SSLContext, str], engine: Engine,
) -> None:
    origin_tls, ca_file = internal_ca
    origin = ScriptedOrigin(lambda r: ok(b"healthy"))
    server = await asyncio.start_server(origin.handle, "127.0.0.1", 0, ssl=origin_tls)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/health"
    policy = BreakerPolicy(10, 0.5, 5, 15, 3)
    try:
        assert await BreakerClient(engine, "r", policy, health_check_url=url,
                                   ca_file=ca_file)._healthy()
        assert not await BreakerClient(engine, "r", policy, health_check_url=url)._healthy()
    finally:
        server.close()


def _scope(path: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, object]:
    return {"type": "http", "method": "POST", "path": path.decode("latin-1"),
            "raw_path": path, "query_string": b"", "headers": headers,
            "client": ("203.0.113.7", 5000), "scheme": "https"}


@pytest.mark.parametrize("path", [b"/a b", b"/a\r\nx-injected: 1", b"/\x00"])
def test_a_target_that_could_split_the_request_is_not_forwarded(path: bytes) -> None:
    pool = OriginPool("http://origin.internal", connect_timeout=1, read_timeout=1,
                      max_connections=1)
    assert request_head(_scope(path, []), pool) is None


def test_a_request_with_both_framings_goes_on_chunked_only() -> None:
    pool = OriginPool("http://origin.internal:8080/shop", connect_timeout=1, read_timeout=1,
                      max_connections=1)
    request = request_head(_scope(b"/cart", [(b"content-length", b"5"),
                                              (b"transfer-encoding", b"chunked")]), pool)
    assert request is not None
    assert request.head.startswith(
        b"POST /shop/cart HTTP/1.1\r\nhost: origin.internal:8080\r\n")
    assert b"transfer-encoding: chunked\r\n" in request.head
    assert b"content-length" not in request.head
    assert (request.has_body, request.chunked, request.length) == (True, True, None)


def test_one_network_may_hold_only_its_share_of_what_is_in_flight() -> None:
    """One address (or its /24, or an IPv4 client on a dual-stack socket) takes at most
    a fifth of the pool's exchanges, 32 at least; another network is not held back."""
    from waitingroom.proxy.proxy import NETWORK_FLOOR

    proxy = OriginProxy("http://127.0.0.1:9", max_connections=4)
    attacker = [{"client": (f"203.0.113.{n % 250}", 1000 + n)} for n in range(NETWORK_FLOOR)]
    taken = [proxy._take_network(scope) for scope in attacker]
    assert taken == ["203.0.113.0/24"] * NETWORK_FLOOR
    assert proxy._take_network({"client": ("::ffff:203.0.113.77", 1)}) is None
    assert proxy._take_network({"client": ("198.51.100.7", 1)}) == "198.51.100.0/24"
    proxy._in_flight.give("203.0.113.0/24")  # one exchange ends: one more may start
    assert proxy._take_network({"client": ("203.0.113.9", 1)}) == "203.0.113.0/24"
