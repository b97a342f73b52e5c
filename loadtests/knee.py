"""An origin with a knee the room is not told, and a line of shoppers that never runs
dry: what adaptive capacity is measured (``loadtests/adaptive_live.py``) and tested
(``tests/room/test_adaptive.py``) against."""

from __future__ import annotations

import asyncio
import random
import time

from starlette.types import Receive, Scope, Send

from loadtests.browsing import Browser

KNEE = 37
UNLOADED_SECONDS = 0.4


class KneeOrigin:
    """An order system that serves ``KNEE`` shoppers at once at full speed: past
    that, every answer slows in proportion to the shoppers using it (those seen in
    the last second; ``/done`` ends one). ``failing`` is the share of answers that are
    500s."""

    def __init__(self) -> None:
        self.shoppers: dict[bytes, float] = {}
        self.failing = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        now, session = time.monotonic(), dict(scope["headers"]).get(b"x-waitingroom-session")
        if session is not None:
            self.shoppers[session] = now
        self.shoppers = {s: seen for s, seen in self.shoppers.items() if seen > now - 1}
        await asyncio.sleep(UNLOADED_SECONDS * max(1.0, len(self.shoppers) / KNEE))
        if scope["path"] == "/done":
            self.shoppers.pop(session or b"", None)
        status = 500 if random.random() < self.failing else 200
        release = [(b"x-waitingroom-release", b"1")] if scope["path"] == "/done" else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), *release]})
        await send({"type": "http.response.body", "body": b"origin"})


async def shop(url: str, shoppers: int, stop: asyncio.Event) -> None:
    """``shoppers`` people who each join the line, wait, make 10 requests once in (no
    time to think), finish, and join again: a line that never runs dry."""

    async def one() -> None:
        browser = Browser([url])
        try:
            while not stop.is_set():
                status, text = await browser.open("/checkout")
                if text != "origin" and status != 500:
                    await asyncio.sleep(0.5)  # pacing the polls, not waiting on an event
                    continue
                for _ in range(10):
                    await browser.open("/checkout")
                await browser.open("/done")
        finally:
            await browser.aclose()

    await asyncio.gather(*(one() for _ in range(shoppers)))
