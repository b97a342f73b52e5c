"""A shopper's browser, as the load tests drive it (aiohttp, no JavaScript engine):
its own cookies and its own network, and what the room's pages make a real browser do.

- The first visit's page (``arrive.js``) asks again at once, with the room's cookie.
- The queue page waits on the event stream (``sse``) or polls ``/_wr/status`` at the
  interval the room advises (``poll``), then goes on to the page asked for.
- A shop page carrying ``/_wr/static/leave.js`` (added by the room by default) says
  ``here`` half a second after it shows, and ``leave`` when it goes: on the way to the
  next page, or when the tab is closed (``closed=1``, as Chromium tells the script);
  a queue page closed says so too (``queue.js``).

Each browser comes from a loopback address of its own (127.x.y.z; Linux routes all of
127/8 to the loopback), so the room counts it in a network of its own, as it would
real shoppers on many networks; the junk in ``abuse.py`` comes from one address.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import aiohttp

LEAVE_SCRIPT = "/_wr/static/leave.js"
QUEUE_SCRIPT = "/_wr/static/queue.js"
_ADDRESSES = itertools.count(1)


def new_address() -> str:
    """A loopback address in a /24 no other browser of this run has (64,000 of them)."""
    n = next(_ADDRESSES)
    return f"127.{1 + n // 256 % 250}.{n % 256}.1"


class Browser:
    """One shopper's browser, talking to any of ``urls`` (a load balancer's choice, per
    request). ``headers`` go on every request; ``address``: where it connects from."""

    def __init__(self, urls: list[str], *, room: str = "default",
                 headers: dict[str, str] | None = None, address: str | None = None) -> None:
        self.urls = urls
        self.room = room
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers or {},
            connector=aiohttp.TCPConnector(local_addr=(address or new_address(), 0)),
            # No overall timeout: at the defaults a shopper may wait longer than
            # aiohttp's default five minutes, and must not be counted as walking away.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        self._page_has_beacon = self._on_queue_page = False
        self._here: asyncio.Task[None] | None = None
        self._beacons: set[asyncio.Task[None]] = set()

    def url(self, path: str) -> str:
        """``path`` at one of the room's processes."""
        return random.choice(self.urls) + path

    async def open(self, path: str) -> tuple[int, str]:
        """Navigate to ``path`` as a browser would: the page before goes (its beacon says
        ``leave``), the new one shows (``here``, if it carries the beacon); a first
        visit's page is asked again at once. The page's status and text."""
        status, text, arriving = await self._get(path)
        if arriving:
            status, text, arriving = await self._get(path)
        self._went()
        self._page_has_beacon = LEAVE_SCRIPT in text
        self._on_queue_page = QUEUE_SCRIPT in text
        if self._page_has_beacon:
            self._here = self._beacon("here", delay=0.5)
        return status, text

    async def _get(self, path: str) -> tuple[int, str, bool]:
        async with self.session.get(self.url(path), headers={"accept": "text/html"}) as answer:
            text = await answer.text()
            return (answer.status, text,
                    answer.headers.get("x-waitingroom-state") == "arriving")

    def close_tab(self) -> None:
        """The shopper closes the tab: the page goes, and (as Chromium's Navigation API
        lets the beacon tell) with no navigation of its own."""
        self._went(closed=True)
        if self._on_queue_page:  # queue.js says so too: no slot held while gone
            self._beacon("leave&closed=1")
        self._page_has_beacon = self._on_queue_page = False

    def _went(self, *, closed: bool = False) -> None:
        if self._here is not None and not self._here.done():
            self._here.cancel()  # the page went before its script said it was here
        if self._page_has_beacon:
            self._beacon("leave&closed=1" if closed else "leave")

    def _beacon(self, what: str, *, delay: float = 0.0) -> asyncio.Task[None]:
        path, _, more = what.partition("&")
        query = f"?room={self.room}" + (f"&{more}" if more else "")

        async def send() -> None:
            await asyncio.sleep(delay)
            async with self.session.post(self.url(f"/_wr/{path}{query}")):
                pass

        task = asyncio.create_task(send())
        self._beacons.add(task)
        task.add_done_callback(self._beacons.discard)
        return task

    async def wait_turn(self, client: str) -> bool:
        """Wait on the queue page until let in (True), by ``client``: ``sse`` or
        ``poll``."""
        if client == "sse":
            while True:
                async with self.session.get(self.url(f"/_wr/events?room={self.room}")) as s:
                    async for line in s.content:
                        if line.startswith(b"data: ") and b'"state":"admitted"' in line:
                            return True
        while True:
            status = await self.status()
            if status.get("state") == "admitted":
                return True
            await asyncio.sleep(status.get("poll_after_seconds", 5))

    async def status(self) -> dict[str, Any]:
        """``GET /_wr/status``, as JSON (a refusal as ``{"state": "busy"}``)."""
        async with self.session.get(self.url(f"/_wr/status?room={self.room}"),
                                    headers={"accept": "application/json"}) as answer:
            if answer.status != 200:
                return {"state": "busy", "poll_after_seconds": 2}
            return dict(await answer.json())

    async def aclose(self) -> None:
        """Wait for beacons on their way, then close the connections."""
        if self._beacons:
            await asyncio.gather(*self._beacons, return_exceptions=True)
        await self.session.close()
