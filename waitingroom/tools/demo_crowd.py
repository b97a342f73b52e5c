"""``waitingroom demo --crowd N``: N make-believe shoppers, so a newcomer sees the line
form and move without writing a script. Each does what a phone does: arrives (the
first visit's cookie, then the place), waits as the queue page waits (asking when the
room says to, waiting out a "too many from your network" answer), shops for a few
seconds, orders (which frees the place at once) and comes back later as someone new."""

from __future__ import annotations

import asyncio
import contextlib
import random

import aiohttp

JSON = {"accept": "application/json"}
THINK_SECONDS = (4.0, 10.0)
"""How long a shopper spends at the checkout before ordering."""
REST_SECONDS = (2.0, 8.0)
"""Between one shopper leaving and the next arriving in their stead."""
TURNED_AWAY_REST_SECONDS = (20.0, 40.0)
"""After a shopper was turned away (closed, sold out, capture): the next comes later."""


class Crowd:
    """``size`` shoppers in turn at ``site``, until :meth:`stop`."""

    def __init__(self, site: str, size: int) -> None:
        self.site, self.size = site, size
        self.orders = 0
        """Orders placed so far."""
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Send them in, a second apart (a crowd, not a burst)."""
        self._tasks = [asyncio.create_task(self._turns(delay=float(k)))
                       for k in range(self.size)]

    async def stop(self) -> None:
        """Call them all off and wait until they have gone."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _turns(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            served = False
            # The room or shop away for a moment (the demo's own break): go on.
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                served = await self._visit()
            await asyncio.sleep(random.uniform(*(REST_SECONDS if served
                                                 else TURNED_AWAY_REST_SECONDS)))

    async def _visit(self) -> bool:
        """One shopper's visit, from the first request to the order; False if the
        shopper was turned away."""
        timeout = aiohttp.ClientTimeout(total=30)
        jar = aiohttp.CookieJar(unsafe=True)  # the demo's site is an address: keep its cookies
        async with aiohttp.ClientSession(self.site, timeout=timeout, cookie_jar=jar) as browser:
            await self._arrive(browser)
            while True:
                async with browser.get("/_wr/status", headers=JSON) as answer:
                    status = await answer.json(content_type=None)
                    wait = float(answer.headers.get("retry-after") or 0)
                if status.get("state") in ("admitted", "open"):
                    break
                if status.get("state") not in ("queued", "paused", "prequeue", "draw"):
                    return False  # turned away (closed, sold out, capture): goes home
                await asyncio.sleep(max(1.0, wait, status.get("poll_after_seconds") or 0))
            async with browser.get("/checkout") as answer:
                await answer.read()
            await asyncio.sleep(random.uniform(*THINK_SECONDS))
            async with browser.post("/checkout") as answer:
                if answer.status == 200:
                    self.orders += 1
                return answer.status == 200

    @staticmethod
    async def _arrive(browser: aiohttp.ClientSession) -> None:
        """The first visit (a cookie) and the next (a place, unless the room says
        to wait: then again when it says)."""
        for _ in range(60):
            async with browser.get("/checkout") as answer:
                await answer.read()
                retry = answer.headers.get("retry-after")
                if answer.status != 429 and answer.headers.get(
                        "x-waitingroom-state") != "arriving":
                    return
            await asyncio.sleep(float(retry) if retry and answer.status == 429 else 0.1)
