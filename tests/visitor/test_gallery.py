"""Every visitor page in every state, in English, French and German, on a phone
(390 px) and a desktop (1280 px), in a real Chromium: each shows its state's heading
in the language asked for. ``make gallery`` keeps the pictures in ``docs/gallery/``
(``GALLERY_DIR=docs/gallery``; linked from the README); the tests keep theirs in
``test-artifacts/gallery/`` and check that the gallery has every one."""

from __future__ import annotations

import asyncio
import os
import re
import time
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.servers import Browser, serve_in_process
from tests.visitor.chromium import ARTIFACTS, NEEDS_CHROMIUM
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.status import State

GALLERY = Path(__file__).resolve().parents[2] / "docs" / "gallery"
LANGUAGES = ("en", "fr", "de")
SIZES = {"phone": (390, 844), "desktop": (1280, 800)}
SHOTS: dict[str, tuple[State | None, str, str]] = {
    "queued": ("queued", "In line: the place, the estimate once measured", "Your place in line"),
    "paused": ("paused", "In line while ops pause admissions", "Entry is paused"),
    "sold-out-in-line": ("sold_out", "In line when the stock runs out: the place kept",
                         "Sold out for now. You keep your place"),
    "interest": (None, "Leave contact details to hear if more comes in",
                 "Hear if more comes in"),
    "sold-out": ("sold_out", "A newcomer after the sell-out", "Everything on sale has been sold"),
    "full": ("full", "A newcomer while the line is as long as ops allow", "The line is full"),
    "no-line": ("full", "Method reject: every place taken, no line kept",
                "This sale keeps no line"),
    "draw": ("draw", "Method random: in the draw", "You're in the draw"),
    "prequeue": ("prequeue", "Before the sale starts: the time to the start",
                 "Expected wait: about 10 minutes"),
    "turn": ("admitted", "The turn has come", "It's your turn!"),
    "capture": ("capture", "Orders taken as details (the order system is down)",
                "Our order system isn't working right now"),
    "capture-errors": ("capture", "The details form sent with nothing filled in",
                       "Please check the fields marked below."),
    "receipt": ("capture", "Details taken: the reference and what happens next",
                "Your details are safely stored"),
    "closed": ("closed", "A newcomer once ops close the line", "The line is closed"),
    "status": (None, "The status page, for everyone", "Queue status"),
    "handoff": (None, "Continue on another device", "Open this link, or scan the code"),
    "moved": ("moved", "The place moved to another device", "Your place moved"),
    "notify-done": (None, "Left an address to be told when it's their turn",
                    "Done: we'll send you a link when it's your turn"),
    "link-refused": (None, "A notify-me or handoff link used already or expired",
                     "This link can't be used"),
}
"""Each picture's name: the state its page is in (None: a page of its own), what it
shows, and English words its page says (not in French or German)."""
WITHOUT_A_PAGE = {"open": "nobody waits: the shop itself",
                  "arriving": "a first visit's page, gone as it loads"}


def pictures() -> list[str]:
    """Every picture's file name."""
    return [f"{name}-{lang}-{size}.png"
            for name in SHOTS for lang in LANGUAGES for size in SIZES]


def test_the_gallery_has_every_page_in_every_state() -> None:
    """A page or a state with no picture fails (run ``make gallery``)."""
    shown = {state for state, _, _ in SHOTS.values()}
    assert set(typing.get_args(State)) - shown == set(WITHOUT_A_PAGE)
    missing = [name for name in pictures() if not (GALLERY / name).is_file()]
    assert not missing, f"no picture (make gallery): {missing[:5]}"
    index = (GALLERY / "README.md").read_text()
    assert not [name for name in pictures() if f"({name})" not in index]
    assert (GALLERY / "README.md").read_text() == gallery_index()
    readme = (GALLERY.parents[1] / "README.md").read_text()
    assert "docs/gallery/README.md" in readme


def gallery_index() -> str:
    """``docs/gallery/README.md``: the phone pictures in a table, the desktop ones
    linked."""
    lines = ["# Gallery: every visitor page in every state", "",
             "Made by `make gallery` (a real Chromium against a real room; the shop is "
             "called waitPhone). Phone: 390 px wide; desktop: 1280 px, linked under each.",
             "", "| page | English | Français | Deutsch |", "|---|---|---|---|"]
    for name, (_, what, _) in SHOTS.items():
        cells = [f"![{name} {lang}]({name}-{lang}-phone.png)<br>"
                 f"[desktop]({name}-{lang}-desktop.png)" for lang in LANGUAGES]
        lines.append(f"| **{name}**: {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
@NEEDS_CHROMIUM
async def test_every_page_in_every_state_in_every_language(
    make_room: Callable[..., WaitingRoomMiddleware], browser: object,
) -> None:
    """Walk the room through its states; each page is pictured in three languages at
    two widths, and says its state in the language asked for."""
    async_api = pytest.importorskip("playwright.async_api")
    from tests.visitor.test_browser import shop

    out = _pictures_dir()
    room = make_room(shop, capacity=1, gated_paths=("/checkout*",), shop_name="waitPhone",
                     smtp_url="smtp://127.0.0.1:9", public_url="https://shop.example",
                     new_places_per_minute_per_network=0)  # every newcomer is one address
    engine, name = room.engine, "default"
    door = room.rooms.default.room

    async def change(**config: Any) -> None:
        await engine.rooms.configure(name, **config)
        await door.refresh_config()

    async with serve_in_process(room) as url, Browser(base_url=url) as holder:
        await holder.get("/checkout")  # takes the one slot
        await asyncio.gather(*(engine.visit(name, f"ahead-{i}", new=True) for i in range(41)))
        context = await browser.new_context(  # type: ignore[attr-defined]
            viewport=dict(zip(("width", "height"), SIZES["phone"], strict=True)))
        page = await context.new_page()
        taken: list[str] = []

        async def picture(shot: str, show: Callable[[str], Awaitable[Any]]) -> None:
            words = SHOTS[shot][2]
            for lang in LANGUAGES:
                await show(lang)
                await page.wait_for_load_state()
                assert await page.get_attribute("html", "lang") == lang, (shot, lang)
                main = page.locator("main")
                if lang == "en":
                    await async_api.expect(main).to_contain_text(words)
                else:  # said, in words of its own
                    await async_api.expect(main).not_to_contain_text(words)
                for size, (width, height) in SIZES.items():
                    await page.set_viewport_size({"width": width, "height": height})
                    file = f"{shot}-{lang}-{size}.png"
                    await page.screenshot(path=str(out / file))
                    taken.append(file)
                await page.set_viewport_size(dict(zip(("width", "height"), SIZES["phone"],
                                                      strict=True)))

        def at(path: str) -> Callable[[str], Awaitable[Any]]:
            return lambda lang: page.goto(f"{url}{path}{'&' if '?' in path else '?'}lang={lang}")

        async def newcomer(lang: str) -> None:  # as in a new tab
            await page.evaluate("sessionStorage.clear()")  # arrive.js counts its tries there
            await context.clear_cookies()
            await page.goto(f"{url}/checkout?lang={lang}")

        try:
            await page.goto(f"{url}/checkout")
            await page.locator("#wr-position").filter(has_text=re.compile(r"\d")).wait_for()
            await picture("queued", at("/checkout"))
            await change(paused=True)
            await picture("paused", at("/checkout"))
            await change(paused=False, stock=0)
            await picture("sold-out-in-line", at("/checkout"))
            assert await page.locator("form[action*='/_wr/notify']").count() == 0  # no turn
            await picture("interest", at("/_wr/interest"))
            await picture("sold-out", newcomer)
            await change(stock="off")
            await page.goto(f"{url}/checkout")  # a place again, for the line below
            await change(max_waiting=1)
            await picture("full", newcomer)
            await change(max_waiting=0, method="reject")
            await picture("no-line", newcomer)
            await change(method="random")
            await picture("draw", newcomer)
            await at("/checkout")("en")  # a draw has no order to promise
            assert "first come, first served" not in await page.inner_text("main")
            assert await page.locator("#wr-wait").is_hidden()  # no order to wait in
            twin = (await holder.get("/_wr/status-page.json")).json()  # the status page too
            assert twin["state"] == "draw" and "drawn at random" in twin["state_text"]
            await change(method="fifo", start_at_ms=int(time.time() * 1000) + 600_000)
            await picture("prequeue", newcomer)
            await change(start_at_ms=0, capture="on")
            await picture("capture", at("/checkout"))

            async def sent_empty(lang: str) -> None:
                await at("/checkout")(lang)
                await page.click("form[action*='capture'] button")
            await picture("capture-errors", sent_empty)

            async def sent(lang: str) -> None:
                await at("/checkout")(lang)
                for field, value in (("name", "Bo Example"), ("email", "bo@example.com"),
                                     ("product", "waitPhone 3G")):
                    await page.fill(f"#f-{field}", value)
                await page.check("input[name=consent]")
                await page.click("form[action*='capture'] button")
                await page.locator(".ref").wait_for()
            await picture("receipt", sent)
            await change(capture="auto", mode="closed")
            await picture("closed", newcomer)
            await picture("status", at("/_wr/status-page"))
            await change(mode="normal", paused=True)  # newcomers wait, whatever is free
            await picture("handoff", _handoff(page, url, newcomer))
            await picture("moved", _moved(page, url, context, browser, newcomer))
            assert await page.locator("nav a[hreflang]").count() == 2  # the other languages

            async def notified(lang: str) -> None:
                await newcomer(lang)
                await page.fill("#n-email", "bo@example.com")
                await page.click("form[action*='/_wr/notify'] button")
            await picture("notify-done", notified)
            await picture("link-refused", at("/_wr/claim?t=used-or-made-up"))
            await picture("turn", _turn(page, url, change, newcomer))
        finally:
            await context.close()
    assert sorted(taken) == sorted(pictures())
    _index(out)


def _pictures_dir() -> Path:
    """Where the pictures go: ``GALLERY_DIR`` (``make gallery``: docs/gallery), else
    the test artifacts."""
    out = Path(os.environ.get("GALLERY_DIR") or ARTIFACTS / "gallery")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _index(out: Path) -> None:
    if out.resolve() == GALLERY.resolve():
        (out / "README.md").write_text(gallery_index())


def _handoff(page: Any, url: str,
             newcomer: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    async def show(lang: str) -> None:
        await newcomer(lang)
        await page.locator("#wr-position").filter(has_text=re.compile(r"\d")).wait_for()
        await page.goto(f"{url}/_wr/resume-link?to=/checkout")
    return show


def _moved(page: Any, url: str, context: Any, browser: Any,
           newcomer: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    async def show(lang: str) -> None:
        await _handoff(page, url, newcomer)(lang)
        link = await page.locator(".link a").get_attribute("href")
        other = await browser.new_context()
        try:
            taker = await other.new_page()
            await taker.goto(link.replace("https://shop.example", url))
        finally:
            await other.close()
        await page.goto(f"{url}/checkout")
    return show


def _turn(page: Any, url: str, change: Callable[..., Awaitable[None]],
          newcomer: Callable[[str], Awaitable[None]]) -> Callable[[str], Awaitable[None]]:
    async def show(lang: str) -> None:
        await change(paused=True)
        await newcomer(lang)
        await page.locator("#wr-position").filter(has_text=re.compile(r"\d")).wait_for()
        # The page goes on to the shop at its turn: held back, it stays on the turn.
        await page.route(f"{url}/checkout*", lambda route: route.abort())
        await change(paused=False, capacity=1000)
        await page.locator("#wr-turn").filter(has_text=re.compile(r"\w")).wait_for()
        await page.locator("form[action*='/_wr/notify']").wait_for(state="hidden")
        await page.locator("h1").filter(has_text=re.compile("turn|tour|Reihe")).wait_for()
        await page.unroute(f"{url}/checkout*")
    return show
