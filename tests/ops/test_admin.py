"""Ops control: admin API and CLI on one process, effects seen by visitors on another;
the status page, metrics, audit, and refusals that never become 5xx."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import AUTH, TOKEN
from tests.servers import Browser, cli, eventually, ops_and_shop
from waitingroom.middleware import WaitingRoomMiddleware

GRAFANA_DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/waitingroom.json"


@pytest.mark.slow
@pytest.mark.serial  # "within a second", as the docs promise: alone, before the parallel lane
async def test_admin_changes_reach_visitors_on_another_process(
    room_env: dict[str, str],
) -> None:
    async with ops_and_shop(room_env, 4) as (ops_url, shop_url, visitors):
        await _drive(ops_url, shop_url, visitors)


async def _drive(ops_url: str, shop_url: str, visitors: list[httpx.AsyncClient]) -> None:
    first, second, third, fourth = visitors
    for visitor in visitors:
        await visitor.get("/checkout")

    async def status(visitor: httpx.AsyncClient) -> dict[str, Any]:
        return (await visitor.get("/_wr/status")).json()  # type: ignore[no-any-return]

    # Raising capacity admits the next two, in order; the fourth moves to the front.
    assert cli(ops_url, "capacity", "3")["config"]["capacity"] == 3

    async def next_two_in() -> bool:
        return [(await status(v))["state"] for v in (second, third)] == ["admitted"] * 2

    await eventually(next_two_in, "capacity 3 admits the next two")
    assert (await status(fourth))["position"] == 1

    # Pause: a freed place is not given away; the line is told.
    cli(ops_url, "pause")

    async def paused() -> bool:
        return (await status(fourth))["state"] == "paused"

    await eventually(paused, "pause shows on the other process")
    await first.get("/done")  # the origin releases the first session
    assert (await status(fourth))["state"] == "paused"
    cli(ops_url, "resume")

    async def admitted() -> bool:
        return (await status(fourth))["state"] == "admitted"

    await eventually(admitted, "resume admits the next in line")

    # The message, everywhere, within a second.
    cli(ops_url, "message", "Back", "in", "stock", "at", "9")
    newcomer = Browser(base_url=shop_url)
    try:
        async def message_everywhere() -> bool:
            page = (await newcomer.get("/checkout")).text
            json_status = await status(newcomer)
            status_page = (await newcomer.get("/_wr/status-page")).text
            twin = (await newcomer.get("/_wr/status-page.json")).json()
            return all("Back in stock at 9" in text for text in (
                page, json_status["message"] or "", status_page, twin["message"] or ""))

        await eventually(message_everywhere, "the message on all pages")

        # Open: everyone passes; then back to normal gating.
        cli(ops_url, "open")

        async def open_now() -> bool:
            return (await newcomer.get("/checkout")).text == "origin:/checkout"

        await eventually(open_now, "open lets the newcomer through")
        cli(ops_url, "normal")

        # Capture forced on, then off again.
        cli(ops_url, "capture", "on")

        async def capture_form() -> bool:
            return "/_wr/capture" in (await newcomer.get("/checkout")).text

        await eventually(capture_form, "capture on serves the form")
        cli(ops_url, "capture", "auto")

        async def gated_again() -> bool:
            return "/_wr/capture" not in (await newcomer.get("/checkout")).text

        await eventually(gated_again, "capture auto gates normally again")
    finally:
        await newcomer.aclose()

    # Close the line: a newcomer is told, nobody already in line is affected.
    assert cli(ops_url, "rate", "120")["config"]["rate"] == 120
    cli(ops_url, "close")
    latecomer = Browser(base_url=shop_url)
    try:
        async def closed_to_newcomers() -> bool:
            return (await status(latecomer))["state"] == "closed"

        await eventually(closed_to_newcomers, "close refuses new places")
        assert "The line is closed" in (await latecomer.get("/checkout")).text
        assert "set-cookie" not in (await latecomer.get("/checkout")).headers
        assert (await status(fourth))["state"] == "admitted"
    finally:
        await latecomer.aclose()

    audit = cli(ops_url, "audit")["entries"]
    assert audit[-1] == {**audit[-1], "who": "alice", "before": {"capacity": 1},
                         "after": {"capacity": 3}}
    assert audit[0]["who"] == "alice"
    assert audit[0]["after"] == {"mode": "closed"}
    assert audit[1]["after"] == {"rate": 120}

    async with Browser(base_url=ops_url) as scraper:
        metrics = (await scraper.get("/_wr/metrics", headers=AUTH)).text
        assert 'waitingroom_capacity{room="default"} 3.0' in metrics
        assert 'waitingroom_admitted_total{room="default"}' in metrics
        assert (await scraper.get("/_wr/metrics")).status_code == 401




BAD_CALLS: list[tuple[str, str, list[tuple[bytes, bytes]], bytes, int]] = [
    ("GET", "/_wr/admin/room", [], b"", 401),
    ("GET", "/_wr/admin/room", [(b"authorization", b"Bearer wrong-token-0123456789")], b"", 401),
    ("GET", "/_wr/admin/room", [(b"authorization", b"Basic " + TOKEN.encode())], b"", 401),
    ("GET", "/_wr/admin/room", [(b"authorization", "Bearer tökén-ünïcode".encode())], b"",
     401),
    ("GET", "/_wr/admin/room", [(b"authorization", b"Bearer \xff\xfe\x00")], b"", 401),
    ("POST", "/_wr/admin/room", [], b'{"capacity": 5}', 401),
    ("POST", "/_wr/admin/room", [], b"{not json", 400),
    ("POST", "/_wr/admin/room", [], b"[]", 400),
    ("POST", "/_wr/admin/room", [], b"{}", 400),
    ("POST", "/_wr/admin/room", [], b'{"capacity": 0}', 400),
    ("POST", "/_wr/admin/room", [], b'{"capacity": "5"}', 400),
    ("POST", "/_wr/admin/room", [], b'{"capacity": true}', 400),
    ("POST", "/_wr/admin/room", [], b'{"paused": "yes"}', 400),
    ("POST", "/_wr/admin/room", [], b'{"mode": "chaos"}', 400),
    ("POST", "/_wr/admin/room", [], b'{"capture": 1}', 400),
    ("POST", "/_wr/admin/room", [], b'{"message": "' + b"x" * 600 + b'"}', 400),
    ("POST", "/_wr/admin/room", [], b'{"drop_table": 1}', 400),
    ("POST", "/_wr/admin/room", [], b'{"message": "' + b"x" * 5000 + b'"}', 413),
    ("DELETE", "/_wr/admin/room", [], b"", 405),
    ("GET", "/_wr/admin/nothing", [], b"", 404),
    ("GET", "/_wr/admin/room?room=nowhere", [], b"", 404),
    ("POST", "/_wr/admin/room?room=nowhere", [], b'{"capacity": 5}', 404),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "x", "paths": ["/x"], "capacity": 1}', 401),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "Bad Name", "paths": ["/x"], "capacity": 1}',
     400),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "x", "paths": [], "capacity": 1}', 400),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "x", "paths": ["x"], "capacity": 1}', 400),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "x", "paths": ["/_wr/status"], "capacity": 1}',
     400),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "x", "paths": ["/x"], "capacity": 0}', 400),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "x", "paths": ["/x"]}', 400),
    ("POST", "/_wr/admin/rooms", [], b'{"name": "default", "paths": ["/x"], "capacity": 1}',
     409),
    ("DELETE", "/_wr/admin/rooms/default", [], b"", 400),
    ("DELETE", "/_wr/admin/rooms/nowhere", [], b"", 404),
    ("DELETE", "/_wr/admin/rooms/nowhere", [], b"", 401),
    ("PUT", "/_wr/admin/rooms", [], b"", 405),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "expected"), BAD_CALLS)
async def test_bad_admin_calls_get_4xx_and_change_nothing(
    room: WaitingRoomMiddleware, caplog: pytest.LogCaptureFixture, method: str, path: str,
    headers: list[tuple[bytes, bytes]], body: bytes, expected: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    if not headers and expected != 401:
        headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
    await room.rooms.default.room.config()  # the room as a first visitor leaves it
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as client:
        response = await client.request(method, path, headers=headers, content=body)
        assert response.status_code == expected
        config = await room.engine.rooms.config("default")
    assert await room.engine.rooms.registered() == []
    assert config.capacity == 2 and not config.paused and config.mode == "normal"
    assert await room.engine.rooms.read_audit("default") == []
    assert TOKEN not in caplog.text


async def test_no_tokens_means_no_admin_api(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    middleware = make_room()
    transport = httpx.ASGITransport(app=middleware)
    async with Browser(transport=transport, base_url="http://shop.test") as c:
        off = await c.get("/_wr/admin/room", headers=AUTH)
        assert off.status_code == 404
        assert "admin API is off" in off.json()["error"]  # and how to turn it on:
        assert "WAITINGROOM_ADMIN_TOKEN" in off.json()["error"]
        assert (await c.get("/_wr/metrics", headers=AUTH)).status_code == 404


async def test_status_page_is_plain_cacheable_and_honest(room: WaitingRoomMiddleware) -> None:
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as client:
        page = await client.get("/_wr/status-page")
        assert page.headers["cache-control"] == "public, max-age=5"
        assert "<script" not in page.text and "Queue running" in page.text
        assert "set-cookie" not in page.headers  # looking takes no place
        await room.engine.rooms.configure("default", message="<b>Soon</b>")
        await room.rooms.default.room.refresh_config()
        page = await client.get("/_wr/status-page")
        assert "&lt;b&gt;Soon&lt;/b&gt;" in page.text and "Posted" in page.text
        twin = (await client.get("/_wr/status-page.json")).json()
        assert twin["state"] == "queueing" and twin["message"] == "<b>Soon</b>"
        assert twin["message_at_ms"] > 0
    assert (await room.engine.rooms.counts("default")).waiting == 0  # looking takes no place


async def test_metrics_count_the_wait_of_an_admitted_ticket_holder(
    room: WaitingRoomMiddleware,
) -> None:
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as first, \
            Browser(transport=transport, base_url="http://shop.test") as second, \
            Browser(transport=transport, base_url="http://shop.test") as third, \
            Browser(transport=transport, base_url="http://shop.test") as scraper:
        for visitor in (first, second, third):
            await visitor.get("/checkout")  # capacity 2: the third waits
        await first.get("/done")
        assert (await third.get("/_wr/status")).json()["state"] == "admitted"
        metrics = (await scraper.get("/_wr/metrics", headers=AUTH)).text
    assert 'waitingroom_wait_seconds_count{room="default"} 1.0' in metrics
    assert 'waitingroom_wait_seconds_bucket{le="5.0",room="default"} 1.0' in metrics
    assert "\nwaitingroom_redis_latency_seconds " in metrics


async def test_the_grafana_dashboard_queries_only_metrics_we_export(
    room: WaitingRoomMiddleware,
) -> None:
    dashboard = json.loads(GRAFANA_DASHBOARD.read_text())
    used = {name for p in dashboard["panels"] for t in p["targets"]
            for name in re.findall(r"waitingroom_[a-z_]+", t["expr"])}
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as c:
        await c.get("/checkout")
        exported = (await c.get("/_wr/metrics", headers=AUTH)).text
    assert used and all(re.search(rf"^{name}[{{ ]", exported, re.M) for name in used), (
        used, exported)


async def test_the_message_can_be_given_per_language(room: WaitingRoomMiddleware) -> None:
    """Ops set the message in German beside the main one: German readers get theirs
    on every page and in the status JSON; everyone else gets the main one."""
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as c:
        changed = await c.post("/_wr/admin/room", headers=AUTH, json={
            "message": "Back at nine", "messages": {"de": "Ab neun Uhr wieder da"}})
        assert changed.status_code == 200
        assert changed.json()["config"]["messages"] == {"de": "Ab neun Uhr wieder da"}
        german = {"Accept-Language": "de", "Accept": "application/json"}
        await c.get("/checkout")  # takes the one slot
        async with Browser(transport=transport, base_url="http://shop.test") as d:
            assert (await d.get("/_wr/status", headers=german)).json()["message"] == \
                "Ab neun Uhr wieder da"
            assert (await d.get("/_wr/status")).json()["message"] == "Back at nine"
            page = await d.get("/checkout", headers={"Accept-Language": "de"})
            assert "Ab neun Uhr wieder da" in page.text and "Back at nine" not in page.text
            status = await d.get("/_wr/status-page.json", headers={"Accept-Language": "de"})
            assert status.json()["message"] == "Ab neun Uhr wieder da"
            assert "Accept-Language" in status.headers["vary"]
        bad = await c.post("/_wr/admin/room", headers=AUTH,
                           json={"messages": {"german": "x"}})
        assert bad.status_code == 400 and "language codes" in bad.json()["error"]
        cleared = await c.post("/_wr/admin/room", headers=AUTH, json={"messages": {"de": ""}})
        assert cleared.json()["config"]["messages"] == {}
