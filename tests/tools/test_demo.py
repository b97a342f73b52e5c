"""The demo's story end to end: the queue protects the checkout, the order system
breaks, customers' details are captured, and the replay puts them in afterwards."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from tests.servers import serve_in_process
from waitingroom.app import build_proxy_app
from waitingroom.capture.replay import Replayer
from waitingroom.engine import Engine
from waitingroom.tools.demo import DemoShop, demo_settings
from waitingroom.tools.redis_server import free_port

pytestmark = pytest.mark.slow


async def test_the_demo_story(redis_url: str, tmp_path: Path) -> None:
    shop, shop_port = DemoShop(capacity=2, session_idle_seconds=120), free_port()
    settings = demo_settings(redis_url=redis_url, shop_port=shop_port, port=8000, capacity=2,
                             spool_dir=str(tmp_path / "spool"))
    async with serve_in_process(shop.app, port=shop_port), \
            serve_in_process(build_proxy_app(settings)) as url:
        clients = [httpx.AsyncClient(base_url=url, follow_redirects=True) for _ in range(3)]
        try:
            first, second, third = clients
            assert "in use" in (await first.get("/checkout")).text
            assert "in use" in (await second.get("/checkout")).text
            assert "You're in line" in (await third.get("/checkout")).text
            assert shop.overloads == 0  # the queue kept the checkout under its limit

            await first.post("/ops/break")
            for _ in range(50):
                page = (await first.get("/checkout")).text
                if "/_wr/capture" in page:
                    break
                await asyncio.sleep(0.1)
            token = re.search(r'name="csrf" value="([^"]+)"', page)
            assert token
            done = await first.post("/_wr/capture", data={
                "csrf": token.group(1), "name": "Ann", "email": "ann@example.com",
                "product": "waitPhone 3G", "consent": "yes"})
            reference = re.search(r"WR-[A-Z2-7-]{14}", done.text)
            assert reference

            await first.post("/ops/fix")
            engine = Engine.from_settings(settings)
            try:
                progress = await Replayer(engine, settings.room, url + "/api/orders").run()
            finally:
                await engine.aclose()
            assert progress.delivered == 1
            assert list(shop.orders) == [reference.group(0)]
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
