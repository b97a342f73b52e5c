"""The standalone proxy over real HTTP: uvicorn servers on loopback, aiohttp/httpx clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from starlette.types import Receive, Scope, Send

from tests.servers import Browser, read_body, serve_in_process
from waitingroom.app import build_proxy_app
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import free_port


async def echo_origin(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it received; ``/slow`` hangs, ``/redirect`` redirects,
    ``.../done`` ends the visitor's session."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = await read_body(receive)
    if scope["path"] == "/open/slow":
        await asyncio.sleep(3)  # well past the proxy's 0.5 s timeout
    if scope["path"] == "/open/big":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"application/json"), (b"connection", b"close, x-private"),
               (b"x-private", b"hop"), (b"keep-alive", b"timeout=5"),
               (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    if scope["path"] == "/open/redirect":
        headers.append((b"location", b"/elsewhere"))
    if scope["path"].endswith("/done"):
        headers.append((b"x-waitingroom-release", b"1"))
    report = {"method": scope["method"], "path": scope["path"],
              "query": scope["query_string"].decode(), "body_length": len(body),
              "headers": {k.decode(): v.decode() for k, v in scope["headers"]}}
    await send({"type": "http.response.start",
                "status": 302 if scope["path"] == "/open/redirect" else 200, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(report).encode()})


@pytest.fixture
async def proxy(make_settings: Callable[..., Settings]) -> AsyncIterator[str]:
    async with serve_in_process(echo_origin) as origin:
        settings = make_settings(origin=origin, open_paths=("/open/*",), capacity=1,
                                 origin_timeout_seconds=0.5)
        async with serve_in_process(build_proxy_app(settings)) as url:
            yield url


async def test_forwarding_sets_forwarded_headers_and_drops_hop_by_hop(proxy: str) -> None:
    async with Browser(base_url=proxy) as client:
        response = await client.get("/open/a%20b?x=1&y=%2F", headers={
            "X-Forwarded-For": "203.0.113.9", "Connection": "keep-alive, x-secret",
            "X-Secret": "hop", "TE": "trailers", "X-Kept": "yes"})
    seen = response.json()
    assert (seen["path"], seen["query"]) == ("/open/a b", "x=1&y=%2F")
    headers = seen["headers"]
    # No load balancer trusted (forwarded_allow_ips empty): the visitor's own claim is
    # not passed on; the origin is told the address it connected from.
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == proxy.removeprefix("http://")
    assert headers["x-kept"] == "yes"
    assert "x-secret" not in headers and "te" not in headers
    assert "x-private" not in response.headers and "keep-alive" not in response.headers
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_a_trusted_load_balancers_forwarded_for_is_passed_on_and_added_to(
        make_settings: Callable[..., Settings]) -> None:
    async with serve_in_process(echo_origin) as origin:
        settings = make_settings(origin=origin, open_paths=("/open/*",),
                                 forwarded_allow_ips="127.0.0.1")
        async with serve_in_process(build_proxy_app(settings)) as url, \
                Browser(base_url=url) as client:
            seen = (await client.get("/open/x", headers={
                "X-Forwarded-For": "203.0.113.9"})).json()
    assert seen["headers"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"


async def test_bodies_stream_both_ways(proxy: str) -> None:
    upload = b"y" * (3 * 1024 * 1024)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(upload), 65536):
            yield upload[i:i + 65536]

    async with Browser(base_url=proxy) as client:
        sent = await client.post("/open/upload", content=upload)
        chunked = await client.post("/open/upload", content=chunks())
        big = await client.get("/open/big")
    assert sent.json()["body_length"] == len(upload)
    assert chunked.json()["body_length"] == len(upload)
    assert len(big.content) == 64 * 65536


async def test_redirects_pass_to_the_visitor_unfollowed(proxy: str) -> None:
    async with Browser(base_url=proxy) as client:
        response = await client.get("/open/redirect")
    assert (response.status_code, response.headers["location"]) == (302, "/elsewhere")


async def test_slow_origin_gets_a_504(proxy: str) -> None:
    async with Browser(base_url=proxy, timeout=10) as client:
        response = await client.get("/open/slow")
    assert response.status_code == 504
    assert response.headers["retry-after"] == "5"


async def test_dead_origin_gets_a_502(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(origin=f"http://127.0.0.1:{free_port()}", open_paths=("/*",))
    async with serve_in_process(build_proxy_app(settings)) as url, \
            Browser(base_url=url) as client:
        response = await client.get("/anything")
    assert response.status_code == 502


async def test_events_stream_positions_until_admitted(proxy: str) -> None:
    async with Browser(base_url=proxy, timeout=20) as first, \
            Browser(base_url=proxy, timeout=20) as second:
        await first.get("/checkout")
        await second.get("/checkout")  # queued at position 1
        events = []
        async with second.stream("GET", "/_wr/events") as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(json.loads(line[6:]))
                if len(events) == 1:
                    # The first visitor finishes; the stream must tell the second.
                    release = await first.get("/checkout/done")
                    assert "x-waitingroom-release" not in release.headers
        assert events[0]["state"] == "queued" and events[0]["position"] == 1
        assert events[-1]["state"] == "admitted"
