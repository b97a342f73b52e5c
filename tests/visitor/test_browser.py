"""The queue page in a real headless Chromium (Debian's, driven by Playwright).

Screenshots land in ``test-artifacts/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from starlette.types import Receive, Scope, Send

from tests.places import RoomClock
from tests.servers import Browser, serve_in_process
from tests.visitor.chromium import ARTIFACTS, NEEDS_CHROMIUM, Beacons
from waitingroom.app import build_proxy_app
from waitingroom.door import standing
from waitingroom.engine import room_keys
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings

async_api = pytest.importorskip("playwright.async_api")
pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]


async def shop(scope: Scope, receive: Receive, send: Send) -> None:
    """The order flow: a page naming the path; ``/checkout/done`` ends the session."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    if scope["path"] == "/checkout/done":
        headers.append((b"x-waitingroom-release", b"1"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body",
                "body": f"<h1 id='shop'>shop:{scope['path']}</h1>".encode()})


@pytest.fixture
async def room_url(make_settings: Callable[..., Settings]) -> AsyncIterator[str]:
    async with serve_in_process(shop) as origin:
        settings = make_settings(origin=origin, capacity=1, gated_paths=("/checkout*",),
                                 message="Doors open at nine")
        async with serve_in_process(build_proxy_app(settings)) as url:
            yield url


async def test_position_updates_live_and_the_turn_lands_on_the_page_asked_for(
    room_url: str, browser: object
) -> None:
    async with Browser(base_url=room_url) as holder, \
            Browser(base_url=room_url) as ahead:
        await holder.get("/checkout")  # takes the only place
        await ahead.get("/checkout")  # first in line
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
        page = await context.new_page()
        await page.goto(room_url + "/checkout?item=waitphone")
        position = page.locator("#wr-position")
        assert await position.inner_text() == "2"
        progress = page.locator("#wr-progress")
        await async_api.expect(progress).to_have_attribute("aria-valuenow", "0")
        await async_api.expect(page.locator("#wr-updated")).to_contain_text("Updated")
        assert "Doors open at nine" in await page.locator("#wr-message").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "queue-page-phone.png"), full_page=True)

        await holder.get("/checkout/done")  # a place frees up: the one ahead goes in
        # A locator, not a JS predicate: the page's CSP forbids eval, as it should.
        await async_api.expect(position).to_have_text("1", timeout=15_000)
        assert page.url.endswith("/checkout?item=waitphone")  # no reload, no redirect
        # The one ahead has gone in: all of the line ahead has moved.
        await async_api.expect(progress).to_have_attribute("aria-valuenow", "100")

        assert (await ahead.get("/_wr/status")).json()["state"] == "admitted"
        await ahead.get("/checkout/done")
        # The turn has a moment: the tab's title says so, and how long the session lasts.
        await async_api.expect(page).to_have_title(re.compile("your turn"), timeout=15_000)
        await async_api.expect(page.locator("#wr-turn")).to_contain_text("up to 30 minutes")
        await async_api.expect(page.locator("#wr-place")).to_be_hidden()  # no "place 1" now
        await page.wait_for_selector("#shop", timeout=15_000)
        assert await page.locator("#shop").inner_text() == "shop:/checkout"
        assert page.url == room_url + "/checkout?item=waitphone"
        await context.close()


async def test_without_javascript_the_page_refreshes_itself(
    room_url: str, browser: object
) -> None:
    async with Browser(base_url=room_url) as holder:
        await holder.get("/checkout")
        context = await browser.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
        page = await context.new_page()
        await page.goto(room_url + "/checkout")
        assert await page.locator("#wr-position").inner_text() == "1"
        await holder.get("/checkout/done")
        await page.wait_for_selector("#shop", timeout=15_000)  # the meta refresh came
        await context.close()


TOKEN = "dashboard-token-0123456789"


async def test_dashboard_is_live_draws_charts_and_its_controls_work(
    make_room: Callable[..., WaitingRoomMiddleware], browser: object
) -> None:
    room = make_room(shop, capacity=1, admin_token=(f"ops:{TOKEN}",),
                     gated_paths=("/checkout*",), message="Doors open at nine")
    async with serve_in_process(room) as url:
        visitors = [Browser(base_url=url) for _ in range(4)]
        closing = contextlib.AsyncExitStack()
        try:
            for visitor in visitors:
                await visitor.get("/checkout")  # one in, three waiting
            await room.engine.rooms.configure("default", stock=40)
            await room.engine.origin.prove("default", 3)  # served 3 at once, well
            await room.engine.timeline.add("default", {"mode": "<b>closed</b>"}, "ops",
                                           in_seconds=3600)
            context = await browser.new_context(  # type: ignore[attr-defined]
                viewport={"width": 1200, "height": 900})
            closing.push_async_callback(context.close)  # ends the page's open stream
            page = await context.new_page()
            errors: list[str] = []  # the console's (a resource that 404s says so there)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(url + "/_wr/admin/dashboard")
            await page.fill("#d-token", TOKEN)
            await page.click("#d-login button")
            await async_api.expect(page.locator("#d-waiting")).to_have_text("3", timeout=10_000)
            # The token lives in the page's memory only: nothing a script of the shop's
            # on this site could read later (storage, cookies, the form field).
            stored = await page.evaluate("JSON.stringify([sessionStorage, localStorage, "
                                         "document.cookie, document.querySelector("
                                         "'#d-token').value])")
            assert TOKEN not in stored
            assert await page.locator("#d-active").inner_text() == "1 / 1"
            assert await page.locator("#d-stock").inner_text() == "40 / 0"
            assert await page.locator("#d-method").inner_text() == "fifo"
            assert re.fullmatch(r"\d+ ms / \d+\.\d%",
                                await page.locator("#d-origin").inner_text())
            state = await page.locator("#d-state").inner_text()
            assert "capacity fixed" in state and "message \u201cDoors open at nine\u201d" in state
            planned = await page.locator("#d-steps li").inner_text()
            # In words and UTC, as the CLI and the status page say it; text, never markup.
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?Z: mode=<b>closed</b>",
                                planned), planned
            assert await page.locator("#d-steps b").count() == 0
            # Charts need two samples; the stream sends one every two seconds.
            painted = """() => {
                const c = document.getElementById('c-active');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
                return n; }"""
            await page.wait_for_function(f"({painted})() > 100", timeout=10_000)
            assert await page.evaluate(
                f"({painted.replace('c-active', 'c-origin')})()") > 100  # the cap, at least
            # The controls start from the live values and say what they will do.
            await async_api.expect(page.locator("#i-capacity")).to_have_value("1")
            asked: list[str] = []

            async def answer(dialog: Any) -> None:
                asked.append(dialog.message)
                await dialog.accept()

            page.on("dialog", answer)

            async def press(label: str) -> str:
                """Press a control, accept its question: the words it asked with."""
                await page.click(f"text={label}")
                await async_api.expect(page.locator("#d-result")).to_have_text(
                    "done", timeout=10_000)
                return asked[-1]

            await page.fill("#i-capacity", "0")  # refused here, before any question
            await page.click("text=Set capacity")
            await async_api.expect(page.locator("#d-result")).to_have_text(
                "Capacity: a whole number, 1 or more")
            assert asked == []
            await page.fill("#i-capacity", "3")
            assert "WARNING" not in await press("Set capacity")  # as many as served well
            await page.fill("#i-capacity", "4")
            said = await press("Set capacity")
            assert "\u2192 4: lets in up to 3 more now" in said
            assert "WARNING: the origin has served at most 3 sessions at once" in said
            assert (await room.engine.rooms.config("default")).capacity == 4
            assert "danger" in (await page.get_attribute("text=Open: no queue", "class") or "")
            assert "nobody else is let in" in await press("Pause")
            assert (await room.engine.rooms.config("default")).paused
            await async_api.expect(page.locator("#d-state")).to_contain_text(
                "PAUSED", timeout=10_000)
            assert "bad" in (await page.get_attribute("#d-state", "class") or "")
            # Bounds never set are offered around the capacity (was: min 1, max 0).
            await async_api.expect(page.locator("#i-max")).to_have_value("8", timeout=10_000)
            await async_api.expect(page.locator("#i-min")).to_have_value("1")
            # Learning the capacity, the stock and the line's limit, each from its inputs.
            await page.fill("#i-min", "2")
            await page.fill("#i-max", "9")
            assert "Learn the capacity between 2 and 9 (now " in await press("Learn capacity")
            config = await room.engine.rooms.config("default")
            assert (config.capacity_mode, config.capacity_min, config.capacity_max) == (
                "adaptive", 2, 9)
            await async_api.expect(page.locator("#d-state")).to_contain_text(
                "capacity adaptive 2\u20139", timeout=10_000)
            await page.fill("#i-stock", "0")
            assert "SOLD OUT" in await press("Set stock")
            assert (await room.engine.rooms.config("default")).stock == 0
            await async_api.expect(page.locator("#d-state")).to_contain_text(
                "SOLD OUT \u00b7 PAUSED", timeout=10_000)
            assert await page.locator("#d-eta").inner_text() == "sold out"  # not a time
            await page.click("text=Stop counting stock")
            await async_api.expect(page.locator("#d-stock")).to_have_text("not counted",
                                                                        timeout=10_000)
            assert "Stop counting stock" in asked[-1]
            await page.fill("#i-limit", "")  # an empty number is refused here, not sent
            await page.click("text=Set line limit")
            await async_api.expect(page.locator("#d-result")).to_have_text(
                "Longest line (0: no limit): a whole number, 0 or more")
            await page.fill("#i-limit", "500")
            said = await press("Set line limit")
            assert "arrivals past 500 waiting are told the line is full" in said
            assert (await room.engine.rooms.config("default")).max_waiting == 500
            await page.select_option("#i-method", "random")
            assert "a fair draw among those waiting" in await press("Set method")
            assert (await room.engine.rooms.config("default")).method == "random"
            await async_api.expect(page.locator("#d-method")).to_contain_text(
                "random", timeout=10_000)
            # Capture forced on: the Breaker tile says so beside "closed", in red, and the
            # state line in capitals; auto gives the breaker the say again.
            assert "Force capture ON" in await press("Capture on")
            await async_api.expect(page.locator("#d-breaker")).to_have_text(
                "closed \u00b7 capture on", timeout=10_000)
            assert "bad" in (await page.get_attribute("#d-breaker", "class") or "")
            await async_api.expect(page.locator("#d-state")).to_contain_text("CAPTURE FORCED ON")
            assert "breaker decide" in await press("Capture auto")
            await async_api.expect(page.locator("#d-breaker")).to_have_text(
                "closed", timeout=10_000)
            assert await page.locator("#d-captures").inner_text() == "0 (0)"
            assert errors == []
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

            status = await context.new_page()
            await status.goto(url + "/_wr/status-page")
            assert "Entry is paused" in await status.inner_text("body")
            assert "Doors open at nine" in await status.inner_text("body")
            await status.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
        finally:
            await closing.aclose()
            await asyncio.gather(*(v.aclose() for v in visitors))


async def test_proof_of_work_earns_the_place_and_the_page_becomes_the_queue(
    make_settings: Callable[..., Settings], browser: object
) -> None:
    async with serve_in_process(shop) as origin:
        settings = make_settings(origin=origin, capacity=1, gated_paths=("/checkout*",),
                                 pow_difficulty=10)
        room = build_proxy_app(settings)
        async with serve_in_process(room) as url:
            contexts = [await browser.new_context() for _ in range(2)]  # type: ignore[attr-defined]
            first, second = [await c.new_page() for c in contexts]
            try:
                await first.goto(url + "/checkout")
                await first.wait_for_selector("#shop", timeout=15_000)  # earned, let in
                await second.goto(url + "/checkout")
                await async_api.expect(second.locator("#wr-position")).to_have_text(
                    "1", timeout=15_000)  # earned, and queued behind the first
            finally:
                for context in contexts:  # ends the queue page's event stream
                    await context.close()
        await room.aclose()


async def test_the_queue_page_speaks_the_visitors_language_and_switches(
    room_url: str, browser: object
) -> None:
    async with Browser(base_url=room_url) as holder:
        await holder.get("/checkout")  # takes the only place
        context = await browser.new_context(  # type: ignore[attr-defined]
            locale="fr-FR", viewport={"width": 390, "height": 844}, is_mobile=True)
        try:
            page = await context.new_page()
            await page.goto(room_url + "/checkout?item=waitphone")
            assert await page.locator("h1").inner_text() == "Vous êtes dans la file"
            assert await page.get_attribute("html", "lang") == "fr"
            await page.click("a[hreflang=de]")
            await async_api.expect(page.locator("h1")).to_have_text(
                "Sie sind in der Warteschlange")
            assert page.url.endswith("/checkout?item=waitphone&lang=de")
            await async_api.expect(page.locator("#wr-position")).to_have_text("1")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "queue-page-de.png"), full_page=True)
            await page.goto(room_url + "/_wr/status-page")  # the choice is remembered
            assert await page.locator("h1").inner_text() == "Status der Warteschlange"
            assert "Warteschlange läuft" in await page.inner_text("body")
        finally:
            await context.close()


async def shop_with_the_beacon(scope: Scope, receive: Receive, send: Send) -> None:
    """Shop pages that carry ``/_wr/static/leave.js``."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": (
        f"<h1 id='shop'>shop:{scope['path']}</h1><a id='next' href='/checkout/next'>next</a>"
        "<script src='/_wr/static/leave.js' defer></script>").encode()})


async def test_the_beacon_keeps_a_browsing_shopper_and_lets_a_leaving_one_go(
    make_settings: Callable[..., Settings], redis_url: str, browser: object
) -> None:
    redis = Redis.from_url(redis_url)
    active = room_keys("default").active

    async def expiry_in() -> float:
        """Seconds until the one session's expiry (room time is Redis time here)."""
        (_, score), = await redis.zrange(active, 0, 0, withscores=True)
        seconds, micros = await redis.time()
        return float(score) / 1000 - (seconds + micros / 1e6)

    async with serve_in_process(shop_with_the_beacon) as origin:
        room = Beacons(build_proxy_app(make_settings(origin=origin, capacity=1,
                                                     gated_paths=("/checkout*",))))
        async with serve_in_process(room) as url:
            page = await browser.new_page()  # type: ignore[attr-defined]
            await page.goto(url + "/checkout")
            await room.wait_for("here")  # the first page says it is here
            await page.click("#next")  # the first page goes, the next one comes
            await room.wait_for("leave", "here")
            assert await expiry_in() > 200  # still the idle timeout: browsing goes on
            await page.goto("about:blank")  # the shopper leaves the shop
            await room.wait_for("here", "leave")
            assert 0 < await expiry_in() <= 10  # ends in seconds, not minutes
            await page.close()
    await redis.aclose()


async def test_the_handoff_page_keeps_the_place_until_the_other_device_takes_it(
    make_room: Callable[..., WaitingRoomMiddleware], browser: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five minutes on the "continue on another device" page (room time, moved by the
    test) and the link still moves the place, at the same position; on a phone the page
    fits the screen and leads back to the line."""
    monkeypatch.setattr(standing, "poll_interval", lambda *args: 1)  # the page asks each second
    room = make_room(shop, capacity=1, gated_paths=("/checkout*",),
                     session_idle_seconds=3600, session_max_seconds=7200,
                     session_first_idle_seconds=0)
    async with serve_in_process(room) as url, Browser(base_url=url) as holder:
        clock = await RoomClock(room.engine, "default").start()
        await holder.get("/checkout")  # the one slot is taken for the whole test
        laptop = await browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 390, "height": 844}, device_scale_factor=2)
        phone = await browser.new_context()  # type: ignore[attr-defined]
        try:
            page = await laptop.new_page()
            await page.goto(url + "/checkout")
            await async_api.expect(page.locator("#wr-position")).to_have_text("1")
            await page.goto(url + "/_wr/resume-link?to=/checkout")
            for _ in range(15):  # 15 x 20 s: five minutes, a 60 s grace five times over
                await clock.advance(20)
                async with page.expect_request(lambda r: "/_wr/status" in r.url):
                    pass
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            assert await page.get_attribute("text=Back to the line", "href") == "/checkout"
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "handoff-phone.png"), full_page=True)
            link = await page.get_attribute(".link a", "href")
            assert link is not None
            other = await phone.new_page()
            await other.goto(link)
            await async_api.expect(other.locator("#wr-position")).to_have_text("1")
            await async_api.expect(page.locator("#wr-keep-state")).to_contain_text(
                "now on your other device", timeout=10_000)
        finally:
            await laptop.close()
            await phone.close()


async def _accessible(page: Any, name: str) -> None:
    """axe-core finds nothing serious or critical on ``page`` (WCAG 2.2 A/AA rules);
    a screenshot of it is kept."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, options={
        "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                               "wcag22aa", "best-practice"]}})
    bad = [f"{v['id']} ({v['impact']}): {v['help']} at "
           f"{[n['target'] for n in v['nodes']][:3]}"
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert not bad, f"{name}: " + "; ".join(bad)


async def test_every_visitor_page_passes_axe_on_a_phone(
    make_room: Callable[..., WaitingRoomMiddleware], browser: object,
) -> None:
    """The queue, capture, notify, handoff, status and closed pages, in two languages,
    at 390 px: no serious or critical accessibility problem."""
    room = make_room(shop, capacity=1, gated_paths=("/checkout*",), shop_name="waitPhone",
                     message="Doors open at nine", smtp_url="smtp://127.0.0.1:9",
                     public_url="https://shop.example")
    async with serve_in_process(room) as url, Browser(base_url=url) as holder:
        await holder.get("/checkout")
        # The axe script is injected by the test; the pages' own CSP forbids that.
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True)
        try:
            page = await context.new_page()
            for lang in ("en", "de"):
                await page.goto(f"{url}/checkout?lang={lang}")
                await async_api.expect(page.locator("#wr-position")).to_have_text("1")
                await _accessible(page, f"a11y-queue-{lang}")
                await page.goto(f"{url}/_wr/resume-link?to=/checkout")
                await _accessible(page, f"a11y-handoff-{lang}")
                await page.goto(f"{url}/_wr/status-page")
                await _accessible(page, f"a11y-status-{lang}")
            await page.goto(f"{url}/checkout")
            await page.fill("#n-email", "bo@example.com")
            await page.click("form[action*='notify'] button")
            await _accessible(page, "a11y-notify-done")
            await room.engine.rooms.configure("default", capture="on")
            await room.rooms.default.room.refresh_config()
            for lang in ("en", "de"):
                await page.goto(f"{url}/checkout?lang={lang}")
                await _accessible(page, f"a11y-capture-{lang}")
            await page.click("form[action*='capture'] button")  # nothing filled in
            await _accessible(page, "a11y-capture-errors")
            await page.set_viewport_size({"width": 320, "height": 640})  # the smallest
            for field, value in (("name", "Bo Example"), ("email", "bo@example.com"),
                                 ("product", "waitPhone 3G")):
                await page.fill(f"#f-{field}", value)
            await page.check("input[name=consent]")
            await page.click("form[action*='capture'] button")
            reference = page.locator(".ref")
            await async_api.expect(reference).to_contain_text("WR-")
            fits = await reference.evaluate("e => e.scrollWidth <= e.clientWidth")
            assert fits, await reference.inner_text()  # the reference stays on the card
            # In German, the language last chosen: a way back, and what happens next.
            assert await page.get_attribute("text=Zurück zum Shop", "href") == "/"
            assert "über die angegebenen Kontaktdaten" in await page.inner_text("main")
            await _accessible(page, "a11y-receipt")
            await room.engine.rooms.configure("default", capture="auto", mode="closed")
            await room.rooms.default.room.refresh_config()
            fresh = await context.new_page()
            await context.clear_cookies()
            await fresh.goto(f"{url}/checkout")
            await _accessible(fresh, "a11y-closed")
        finally:
            await context.close()


async def test_a_page_told_to_wait_by_a_503_waits_as_told(
    room_url: str, browser: object,
) -> None:
    """While the room's Redis is away, its answers are 503s with Retry-After: the queue
    page (on the poll it falls back to) waits that out rather than ask again at once,
    which would multiply the load on a room in trouble. The page's clock is
    Playwright's, moved by the test."""
    unavailable = {"status": 503, "headers": {"retry-after": "30"},
                   "content_type": "application/json",
                   "body": '{"error": "temporarily unavailable"}'}
    async with Browser(base_url=room_url) as holder:
        await holder.get("/checkout")
        context = await browser.new_context()  # type: ignore[attr-defined]
        try:
            page = await context.new_page()
            await page.goto(room_url + "/checkout")  # in line, position 1
            await page.clock.install()
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url) if "/_wr/status" in r.url else None)
            await page.route("**/_wr/events*", lambda route: route.fulfill(**unavailable))
            await page.route("**/_wr/status*", lambda route: route.fulfill(**unavailable))
            async with page.expect_request("**/_wr/status*"):
                await page.reload()  # the event stream fails: the page falls back to polls
            await page.clock.run_for(25_000)
            assert len(asked) == 1  # waited out, not asked again at once
            async with page.expect_request("**/_wr/status*"):
                await page.clock.run_for(10_000)
            assert len(asked) == 2
        finally:
            await context.close()


async def test_a_shops_look_and_language_load_under_the_pages_own_policy(
    make_room: Callable[..., WaitingRoomMiddleware], browser: object, tmp_path: Path,
) -> None:
    """The shop's stylesheet and logo (its brand files) and a language added by a
    catalog alone, in Chromium at 390 px, with the pages' Content-Security-Policy on."""
    brand = tmp_path / "brand"
    (brand / "static").mkdir(parents=True)
    (brand / "static" / "shop.css").write_text(
        "main{background-color:rgb(1, 2, 3);color:#fff}.card{color:#111}", encoding="utf-8")
    (brand / "static" / "logo.svg").write_text(
        "<svg xmlns='http://www.w3.org/2000/svg' width='120' height='40'>"
        "<rect width='120' height='40' fill='#e33'/></svg>", encoding="utf-8")
    locales = tmp_path / "locales"
    locales.mkdir()
    (locales / "es.po").write_text('msgid "You\'re in line"\nmsgstr "Estás en la fila"\n',
                                   encoding="utf-8")
    room = make_room(shop, capacity=1, gated_paths=("/checkout*",), shop_name="Tienda",
                     templates_dir=str(brand), locales_dir=str(locales),
                     stylesheet="/_wr/brand/shop.css", logo="/_wr/brand/logo.svg")
    async with serve_in_process(room) as url, Browser(base_url=url) as holder:
        await holder.get("/checkout")
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 390, "height": 844}, is_mobile=True)
        try:
            page = await context.new_page()
            refused: list[str] = []
            page.on("console", lambda m: refused.append(m.text)
                    if "Content Security Policy" in m.text else None)
            await page.goto(f"{url}/checkout?lang=es")
            await async_api.expect(page.locator("h1")).to_have_text("Estás en la fila")
            await async_api.expect(page.locator("#wr-position")).to_have_text("1")
            background = await page.evaluate(
                "getComputedStyle(document.querySelector('main')).backgroundColor")
            logo = await page.evaluate("document.querySelector('.logo img').naturalWidth")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "branded-queue-es-phone.png"),
                                  full_page=True)
        finally:
            await context.close()
    assert background == "rgb(1, 2, 3)" and logo == 120 and refused == []


async def test_the_honest_line_pages_read_well_on_a_phone_in_every_language(
    make_room: Callable[..., WaitingRoomMiddleware], browser: object,
) -> None:
    """The unlikely chance on the queue page, sold out and a full line, in English,
    French and German at 390 px: the words shown, nothing serious for axe-core."""
    room = make_room(shop, capacity=1, gated_paths=("/checkout*",), shop_name="waitPhone")
    engine, name = room.engine, "default"
    async with serve_in_process(room) as url, Browser(base_url=url) as holder:
        await holder.get("/checkout")
        await engine.rooms.configure(name, stock=1)
        await engine.rooms.configure(name, sales_per_session=1.0)
        await asyncio.gather(*(engine.visit(name, f"ahead-{i}", new=True) for i in range(30)))
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport={"width": 390, "height": 844}, is_mobile=True, bypass_csp=True)
        try:
            page = await context.new_page()
            for lang, words in (("en", "most likely run out"), ("fr", "très probablement"),
                                ("de", "sehr wahrscheinlich")):
                await page.goto(f"{url}/checkout?lang={lang}")
                await async_api.expect(page.locator("#wr-chance")).to_contain_text(words)
                await _accessible(page, f"a11y-unlikely-{lang}")
            await engine.rooms.configure(name, max_waiting=10)
            await room.rooms.default.room.refresh_config()
            for lang, words in (("en", "The line is full"), ("fr", "La file est complète"),
                                ("de", "Die Warteschlange ist voll")):
                fresh = await context.new_page()
                await context.clear_cookies()
                await fresh.goto(f"{url}/checkout?lang={lang}")
                await async_api.expect(fresh.locator("h1")).to_have_text(words)
                await _accessible(fresh, f"a11y-full-{lang}")
            await engine.rooms.configure(name, max_waiting=0)
            await engine.rooms.configure(name, stock=0)
            await room.rooms.default.room.refresh_config()
            for lang, words in (("en", "Sold out"), ("fr", "Épuisé"), ("de", "Ausverkauft")):
                fresh = await context.new_page()
                await context.clear_cookies()
                await fresh.goto(f"{url}/checkout?lang={lang}")
                await async_api.expect(fresh.locator("h1")).to_have_text(words)
                await _accessible(fresh, f"a11y-sold-out-{lang}")
        finally:
            await context.close()


SPA = b"""<!doctype html><html lang="en"><title>app</title>
<p id="pos">-</p><p id="result"></p>
<script type="module">
import { fetch as through } from "/_wr/static/client.mjs";
window.loads = (window.loads || 0) + 1;
window.states = [];
through("/checkout/api", {}, { onUpdate: (s) => {
  window.states.push(s.state);
  document.getElementById("pos").textContent = s.state + " " + (s.position ?? "");
} }).then((r) => r.text()).then((t) => { document.getElementById("result").textContent = t; });
</script>"""


async def spa_shop(scope: Scope, receive: Receive, send: Send) -> None:
    """A single-page shop: ``/app`` is its page (open); the rest is ``shop``."""
    if scope["type"] == "http" and scope["path"] == "/app":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": SPA})
    else:
        await shop(scope, receive, send)


async def test_a_single_page_shop_waits_in_line_through_client_js_without_a_page_load(
    make_settings: Callable[..., Settings], browser: object
) -> None:
    async with serve_in_process(spa_shop) as origin:
        settings = make_settings(origin=origin, capacity=1, gated_paths=("/checkout*",))
        async with serve_in_process(build_proxy_app(settings)) as url, \
                Browser(base_url=url) as holder:
            await holder.get("/checkout")  # the one place is taken
            context = await browser.new_context(  # type: ignore[attr-defined]
                viewport={"width": 390, "height": 844})
            page = await context.new_page()
            await page.goto(url + "/app")
            await async_api.expect(page.locator("#pos")).to_have_text("queued 1",
                                                                      timeout=10_000)
            assert await page.locator("#result").inner_text() == ""
            await holder.get("/checkout/done")  # the holder finishes: the app's turn
            await async_api.expect(page.locator("#result")).to_have_text(
                "<h1 id='shop'>shop:/checkout/api</h1>", timeout=15_000)
            assert await page.evaluate("window.loads") == 1  # never a page load
            assert page.url == url + "/app"
            states = await page.evaluate("window.states")
            # A first visit (the app's cookie comes with it), then in line, then in.
            assert states[:2] == ["arriving", "queued"] and states[-1] == "admitted"
            await context.close()


async def test_the_queue_page_says_it_is_reconnecting_while_redis_is_away_and_recovers(
    redis_server: Any, make_settings: Callable[..., Settings], browser: object,
) -> None:
    """Redis stalls under a waiting shopper's page: the page says it is reconnecting
    and that the place is kept (not only "Updated 28 s ago"), and goes back to live
    updates by itself once Redis answers."""
    from tests.servers import FaultyLink

    async with FaultyLink(redis_server.port) as link, serve_in_process(shop) as origin:
        settings = make_settings(origin=origin, capacity=1, gated_paths=("/checkout*",),
                                 redis_url=link.url)
        async with serve_in_process(build_proxy_app(settings)) as url, \
                Browser(base_url=url) as holder:
            await holder.get("/checkout")  # takes the only place
            context = await browser.new_context()  # type: ignore[attr-defined]
            try:
                page = await context.new_page()
                await page.goto(url + "/checkout")
                updated = page.locator("#wr-updated")
                await async_api.expect(updated).to_contain_text("Updated", timeout=15_000)
                link.flowing.clear()
                await async_api.expect(updated).to_contain_text("Reconnecting",
                                                                timeout=15_000)
                await async_api.expect(updated).to_contain_text("Your place is kept")
                link.flowing.set()
                await async_api.expect(updated).to_contain_text("Updated", timeout=15_000)
                assert await page.locator("#wr-position").inner_text() == "1"
            finally:
                await context.close()
