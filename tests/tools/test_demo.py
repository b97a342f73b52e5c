"""The demo's story end to end: the queue protects the checkout, the order system
breaks, customers' details are captured, and the replay puts them in afterwards."""

from __future__ import annotations

import asyncio
import re
import sys
from asyncio.subprocess import PIPE, STDOUT
from pathlib import Path

import pytest

from tests.servers import Browser, eventually, serve_in_process
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
        clients = [Browser(base_url=url, follow_redirects=True) for _ in range(3)]
        try:
            first, second, third = clients
            assert "in use" in (await first.get("/checkout")).text
            assert "in use" in (await second.get("/checkout")).text
            assert "You&#39;re in line" in (await third.get("/checkout")).text
            assert shop.overloads == 0  # the queue kept the checkout under its limit

            await first.post("/ops/break")
            async def capturing() -> bool:
                return "/_wr/capture" in (await first.get("/checkout")).text
            await eventually(capturing, "the capture form after the break", within=5)
            page = (await first.get("/checkout")).text
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


async def test_the_demo_command_prints_a_working_admin_token_and_sends_notices() -> None:
    """``waitingroom demo`` as a newcomer runs it: the URL once it listens, an admin
    token that works, notify-me wired to the mail sink shown at /notices; a second demo
    on the same port says so in one line."""
    port = free_port()
    command = [sys.executable, "-m", "waitingroom.cli", "demo", "--port", str(port)]
    demo = await asyncio.create_subprocess_exec(*command, "--capacity", "1",
                                                stdout=PIPE, stderr=STDOUT)
    try:
        assert demo.stdout is not None
        printed = ""
        while "notify-me messages sent" not in printed:
            line = (await asyncio.wait_for(demo.stdout.readline(), 60)).decode()
            assert line, printed  # the demo ended before it said where it listens
            printed += line
        site = f"http://127.0.0.1:{port}"
        token = re.search(r"admin token\s+(\S+)", printed)
        assert token and site + "/_wr/admin/dashboard" in printed, printed
        async with Browser(base_url=site) as ops:
            room = await ops.get("/_wr/admin/room",
                                 headers={"Authorization": f"Bearer {token.group(1)}"})
            assert room.status_code == 200 and room.json()["config"]["capacity"] == 1

        again = await asyncio.create_subprocess_exec(*command, stdout=PIPE, stderr=PIPE)
        _, said = await asyncio.wait_for(again.communicate(), 60)
        assert again.returncode == 2 and b"already in use" in said
        assert b"Traceback" not in said and said.count(b"\n") == 1

        async with Browser(base_url=site) as shopper, \
                Browser(base_url=site) as waiter:
            assert "in use" in (await shopper.get("/checkout")).text
            await waiter.get("/checkout")  # second in line: asks to be told
            told = await waiter.post("/_wr/notify", data={"email": "bo@example.com",
                                                           "to": "/checkout"})
            assert told.status_code == 200
            await shopper.post("/checkout")  # an order placed: the slot goes to the waiter
            async def emailed() -> bool:
                return "bo@example.com" in (await shopper.get("/notices")).text
            await eventually(emailed, "the notify-me email at /notices", within=10)
            notices = (await shopper.get("/notices")).text
            link = re.search(r'href="(http://[^"]+/_wr/claim\?[^"]+)"', notices)
            assert link, notices
            async with Browser() as phone:
                arrived = await phone.get(link.group(1).replace("&amp;", "&"),
                                          follow_redirects=True)
                assert "in use" in arrived.text  # at the checkout, from the email's link
    finally:
        demo.terminate()
        await asyncio.wait_for(demo.wait(), 30)


async def test_the_demo_crowd_forms_a_line_that_moves_and_never_overloads_the_shop() -> None:
    """``waitingroom demo --crowd 6`` for a shop of 2 checkouts: the make-believe
    shoppers queue, are let in as others order, and the shop never holds more than 2."""
    port = free_port()
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "waitingroom.cli", "demo", "--port", str(port), "--capacity",
        "2", "--crowd", "6", stdout=PIPE, stderr=STDOUT)
    try:
        assert demo.stdout is not None
        printed = ""
        while "make-believe shoppers" not in printed:
            line = (await asyncio.wait_for(demo.stdout.readline(), 60)).decode()
            assert line, printed
            printed += line
        assert "6 make-believe shoppers are coming and going" in printed
        token = re.search(r"admin token\s+(\S+)", printed)
        assert token, printed
        longest = 0
        async with Browser(base_url=f"http://127.0.0.1:{port}",
                           headers={"Authorization": f"Bearer {token.group(1)}"}) as ops:
            async def moved_on() -> bool:
                nonlocal longest
                counts = (await ops.get("/_wr/admin/room")).json()["counts"]
                longest = max(longest, counts["waiting"])
                return bool(longest > 0 and counts["admitted"] >= 5)
            await eventually(moved_on, "a line formed and three were let in from it",
                             within=60)
            shop = (await ops.get("/api/stats")).json()
        assert shop["overloads"] == 0 and shop["peak_sessions"] <= 2, shop
    finally:
        demo.terminate()
        await asyncio.wait_for(demo.wait(), 30)


async def test_the_demo_shop_says_when_it_is_overloaded_not_just_up() -> None:
    """Past its places the shop refuses checkouts: its front page says OVERLOADED
    (it said "up" while refusing them), then "up" with the places in use."""
    shop, port = DemoShop(capacity=1, session_idle_seconds=120), free_port()
    async with serve_in_process(shop.app, port=port) as url, Browser(base_url=url) as ops:
        assert "<b>up</b> (0 of 1 checkout places in use)" in (await ops.get("/")).text
        ok = await ops.get("/checkout", headers={"x-waitingroom-session": "a"})
        refused = await ops.get("/checkout", headers={"x-waitingroom-session": "b"})
        assert (ok.status_code, refused.status_code) == (200, 503)
        front = (await ops.get("/")).text
        assert "<b>OVERLOADED</b>: it refused checkouts in the last 30 s" in front
        assert "(1 refused so far; 1 of 1 checkout places in use)" in front
        await ops.post("/ops/break")
        assert "<b>DOWN</b>" in (await ops.get("/")).text
