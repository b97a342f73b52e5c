"""The room adds ``leave.js`` to the shop's own pages as admitted shoppers load them
(``leave_beacon``, on by default): in real Chromium, through ``serve`` and through the
middleware, on pages that are gzip'd, streamed and under a strict Content-Security-
Policy of their own. The page is intact, its own script runs, and a closed tab ends its
session in seconds, while a trip to another site and back keeps it."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.servers import Browser, eventually, serve_in_process
from tests.visitor.chromium import ARTIFACTS, NEEDS_CHROMIUM, Beacons
from waitingroom.app import build_proxy_app
from waitingroom.engine import room_keys
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings

async_api = pytest.importorskip("playwright.async_api")
pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]

NONCE = "shop-nonce-4f9a"
POLICIES = {
    "nonce": f"default-src 'self'; script-src 'nonce-{NONCE}' 'strict-dynamic'; "
             "object-src 'none'; base-uri 'none'",
    "hosts": "default-src 'none'; script-src https://cdn.shop.test 'unsafe-inline'; "
             "connect-src 'self'",
}


def page(path: str, *, nonce: bool) -> bytes:
    """A shop page whose own inline script must still run (the padding makes Starlette's
    GZipMiddleware compress it)."""
    attribute = f' nonce="{NONCE}"' if nonce else ""
    return (f"<!doctype html><html><head><title>shop</title><script{attribute}>"
            "window.shopRan = true;</script></head><body>"
            f"<h1 id='shop'>shop:{path}</h1><a id='next' href='/checkout/next'>next</a>"
            f"<p>{'a launch-day page ' * 60}</p></body></html>").encode()


def gzip_origin(policy: str) -> ASGIApp:
    """An origin answering every page gzip'd, in two chunks, under ``policy``."""

    async def origin(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        packed = gzip.compress(page(scope["path"], nonce="nonce" in policy))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/html; charset=utf-8"), (b"content-encoding", b"gzip"),
            (b"content-security-policy", policy.encode()), (b"etag", b'"v1"')]})
        await send({"type": "http.response.body", "body": packed[:40], "more_body": True})
        await send({"type": "http.response.body", "body": packed[40:]})

    return origin


def starlette_shop(policy: str) -> Starlette:
    """The same shop as a Starlette app compressing with its own GZipMiddleware."""

    async def checkout(request: Request) -> HTMLResponse:
        return HTMLResponse(page(request.url.path, nonce="nonce" in policy),
                            headers={"content-security-policy": policy})

    return Starlette(routes=[Route("/checkout{rest:path}", checkout)],
                     middleware=[Middleware(GZipMiddleware, minimum_size=100)])


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("way", ["serve", "middleware"])
async def test_a_closed_tab_frees_its_slot_with_no_change_to_the_shops_pages(
    make_settings: Callable[..., Settings], redis_url: str, browser: Any, way: str,
    policy: str,
) -> None:
    redis = Redis.from_url(redis_url)
    active = room_keys("default").active

    async def expiry_in() -> float:
        (_, score), = await redis.zrange(active, 0, 0, withscores=True)
        seconds, micros = await redis.time()
        return float(score) / 1000 - (seconds + micros / 1e6)

    async with serve_in_process(gzip_origin(POLICIES[policy])) as origin_url:
        settings = make_settings(capacity=1, gated_paths=("/checkout*",), origin=origin_url)
        app = (build_proxy_app(settings) if way == "serve" else
               WaitingRoomMiddleware(starlette_shop(POLICIES[policy]), settings=settings))
        room = Beacons(app)
        async with serve_in_process(room) as url:
            context = await browser.new_context()
            tab = await context.new_page()
            refused: list[str] = []
            tab.on("console", lambda m: refused.append(m.text)
                   if "Content Security Policy" in m.text else None)
            answers: list[Any] = []
            tab.on("response", lambda r: answers.append(r) if "/checkout" in r.url else None)
            await tab.goto(url + "/checkout")  # a first visit, then the shop's page
            await async_api.expect(tab.locator("#shop")).to_have_text("shop:/checkout")
            await room.wait_for("here")  # the added script runs, and says so
            assert await tab.evaluate("window.shopRan === true")  # the shop's own too
            assert await tab.evaluate("window.waitingRoomLeave === true")
            shop_page = answers[-1]
            assert (await shop_page.header_value("content-encoding")) == "gzip"
            assert refused == []  # nothing of the shop's was blocked by the widened policy
            await tab.click("#next")  # browsing on keeps the session
            await room.wait_for("leave", "here")
            assert await expiry_in() > 200
            # Off to another site and back (a payment provider's check): the page that
            # goes there says nothing, so the session stays.
            await tab.evaluate(f"document.body.insertAdjacentHTML('beforeend', "
                               f"'<a id=psp href={origin_url}/3ds>pay</a>')")
            await tab.click("#psp")
            await tab.wait_for_url(origin_url + "/3ds")
            await tab.goto(url + "/checkout/back")
            await room.wait_for("here", "here")
            assert await expiry_in() > 200
            ARTIFACTS.mkdir(exist_ok=True)
            await tab.screenshot(path=str(ARTIFACTS / f"beacon-{way}-{policy}.png"))
            await tab.close()  # the tab is closed
            await room.wait_for("here", "leave")
            assert 0 < await expiry_in() <= 2  # the browser says it closed: 2 s
            await context.close()
    await redis.aclose()


async def test_a_closed_queue_page_says_so_and_holds_no_slot_for_its_turn(
    make_settings: Callable[..., Settings], redis_url: str, browser: Any,
) -> None:
    """Chromium tells queue.js the tab closed (no navigation of its own): the waiter is
    marked gone (its turn would hold no slot) and keeps the place. A reload looks the
    same to the page, and the reloaded page's first poll brings the waiter back."""
    async with serve_in_process(gzip_origin(POLICIES["nonce"])) as origin_url:
        settings = make_settings(capacity=1, gated_paths=("/checkout*",), origin=origin_url)
        room = Beacons(build_proxy_app(settings))
        redis = Redis.from_url(redis_url)
        hidden = room_keys("default").hidden
        async with serve_in_process(room) as url, Browser(base_url=url) as holder:
            await holder.get("/checkout")  # the one slot is taken
            context = await browser.new_context()
            tab = await context.new_page()
            await tab.goto(url + "/checkout")
            await async_api.expect(tab.locator("#wr-position")).to_have_text("1")
            await tab.reload()
            await room.wait_for("leave")
            await async_api.expect(tab.locator("#wr-position")).to_have_text("1")

            async def back() -> bool:
                return await redis.zcard(hidden) == 0
            await eventually(back, "the reloaded page's poll brings the waiter back", 10)
            await tab.close()
            await room.wait_for("leave")
            assert await redis.zcard(hidden) == 1  # gone: its turn holds no slot
            await context.close()
        await redis.aclose()
