"""Several rooms: created and revoked at run time through the API and the CLI, each
with its own paths, capacity and rate, seen by visitors of another process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import AUTH
from tests.servers import Browser, admin, cli, eventually, ops_and_shop, waitingroom_serve
from waitingroom.middleware import WaitingRoomMiddleware


@pytest.mark.slow
@pytest.mark.serial  # a slot offered and not yet taken is held for seconds: alone, first
async def test_created_rooms_gate_their_own_paths_in_every_process(
    room_env: dict[str, str],
) -> None:
    async with ops_and_shop(room_env, 4) as (ops_url, _, visitors):
        await _drive(ops_url, visitors)


async def _drive(ops_url: str, visitors: list[httpx.AsyncClient]) -> None:
    first, second, third, fourth = visitors
    # Before the room exists, /consoles/* is not gated (the configured room gates
    # /checkout* and /done only).
    assert (await first.get("/consoles/ps6")).text == "origin:/consoles/ps6"
    created = cli(ops_url, "create-room", "consoles", "--paths", "/consoles/*",
                  "--capacity", "2", "--rate", "600")
    assert created["room"] == "consoles" and created["paths"] == ["/consoles/*"]
    assert created["config"]["capacity"] == 2 and created["config"]["rate"] == 600

    async def gated_on_the_other_process() -> bool:
        return "You&#39;re in line" in (await fourth.get("/consoles/ps6")).text or (
            await fourth.get("/_wr/status?room=consoles")).json().get("room") == "consoles"

    await eventually(gated_on_the_other_process, "the new room gates on the other process")
    await fourth.aclose()
    for visitor in (first, second, third):
        await visitor.get("/consoles/ps6")

    async def status(visitor: httpx.AsyncClient, room: str) -> dict[str, Any]:
        answer = await visitor.get("/_wr/status", params={"room": room})
        return answer.json()  # type: ignore[no-any-return]

    # Its own capacity: fourth (who asked first) and first are in, second waits.
    assert (await status(first, "consoles"))["state"] == "admitted"
    assert (await first.get("/consoles/ps6")).text == "origin:/consoles/ps6"
    queued = await status(second, "consoles")
    assert queued["state"] == "queued" and queued["position"] == 1
    assert (await status(third, "consoles"))["position"] == 2

    # The configured room is untouched: its capacity of 1 still holds for /checkout.
    await third.get("/checkout")
    await second.get("/checkout")
    assert (await status(third, "default"))["state"] == "admitted"
    assert (await status(second, "default"))["position"] == 1

    # Tuning one room leaves the other alone.
    assert cli(ops_url, "--room", "consoles", "capacity", "3")["config"]["capacity"] == 3

    async def next_in() -> bool:
        return (await status(second, "consoles"))["state"] == "admitted"

    await eventually(next_in, "capacity 3 in consoles admits the next in its line")
    assert (await status(third, "consoles"))["position"] == 1
    assert (await status(second, "default"))["position"] == 1
    cli(ops_url, "--room", "consoles", "pause")

    async def consoles_paused() -> bool:
        return (await status(third, "consoles"))["state"] == "paused"

    await eventually(consoles_paused, "pause of consoles on the other process")
    assert (await status(second, "default"))["state"] == "queued"

    rooms = {r["room"]: r for r in cli(ops_url, "rooms")["rooms"]}
    assert rooms["consoles"]["counts"]["active"] == 3 and rooms["consoles"]["config"]["paused"]
    assert rooms["default"]["paths"] == ["/checkout*", "/done"]
    async with Browser(base_url=ops_url) as scraper:
        metrics = (await scraper.get("/_wr/metrics", headers=AUTH)).text
        assert 'waitingroom_capacity{room="consoles"} 3.0' in metrics
        assert 'waitingroom_capacity{room="default"} 1.0' in metrics
        twin = (await scraper.get("/_wr/status-page.json?room=consoles")).json()
        assert twin["room"] == "consoles" and twin["state"] == "paused"

    # Revoked: its paths fall back to the configured room's rules (ungated here).
    assert cli(ops_url, "revoke-room", "consoles") == {"revoked": "consoles"}

    async def ungated_again() -> bool:
        return (await third.get("/consoles/ps6")).text == "origin:/consoles/ps6"

    await eventually(ungated_again, "a revoked room stops gating on the other process")
    assert (await third.get("/_wr/status?room=consoles")).status_code == 404
    trail = cli(ops_url, "audit")["entries"]
    assert [e["action"] for e in trail[:2]] == ["revoke-room", "create-room"]
    assert all(e["who"] == "alice" for e in trail[:2])
    trail = cli(ops_url, "--room", "consoles", "rooms")["rooms"]
    assert [r["room"] for r in trail] == ["default"]


def test_cli_reports_refusals_without_a_traceback(room_env: dict[str, str]) -> None:
    with waitingroom_serve({**room_env, "WAITINGROOM_ORIGIN": "http://127.0.0.1:9"}) as url:
        cli(url, "create-room", "tvs", "--paths", "/tvs/*", "--capacity", "5")
        for args, expected in ((("create-room", "tvs", "--paths", "/x", "--capacity", "1"),
                                "409"),
                               (("revoke-room", "nowhere"), "404"),
                               (("revoke-room", "default"), "400"),
                               (("--room", "nowhere", "show"), "404")):
            result = admin(url, *args, "--json")
            assert result.returncode == 1 and result.stderr.startswith("waitingroom: ")
            assert f"answered {expected}: " in result.stderr and "{" not in result.stderr
            assert "Traceback" not in result.stderr


async def test_pages_and_links_of_a_created_room_name_it(room: WaitingRoomMiddleware) -> None:
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test",
                                 headers=AUTH) as ops:
        made = await ops.post("/_wr/admin/rooms", json={
            "name": "tvs", "paths": ["/tvs/*"], "capacity": 1, "message": "Limited stock"})
        assert made.status_code == 201
        again = await ops.post("/_wr/admin/rooms", json={
            "name": "tvs", "paths": ["/other"], "capacity": 1})
        assert again.status_code == 409
        invite = (await ops.post("/_wr/admin/invites?room=tvs", json={"to": "/tvs/oled"})).json()
        dashboard = await ops.get("/_wr/admin/dashboard?room=tvs")
        assert 'data-room="tvs"' in dashboard.text
        assert (await ops.get("/_wr/admin/dashboard?room=nowhere")).status_code == 404
    async with Browser(transport=transport, base_url="http://shop.test") as first, \
            Browser(transport=transport, base_url="http://shop.test") as second, \
            Browser(transport=transport, base_url="http://shop.test") as vip:
        assert (await first.get("/tvs/oled")).text == "origin:/tvs/oled"
        page = (await second.get("/tvs/oled")).text
        assert 'data-room="tvs"' in page and "Limited stock" in page
        assert 'href="/_wr/status-page?room=tvs"' in page
        assert (await second.get("/_wr/status")).json()["room"] == "default"
        assert (await second.get("/_wr/status?room=tvs")).json()["position"] == 1
        assert (await second.get("/_wr/status?room=nowhere")).status_code == 404
        assert "room=tvs" in invite["url"]
        redeemed = await vip.get(invite["url"])
        assert redeemed.status_code == 303 and redeemed.headers["location"] == "/tvs/oled"
        # The invitee waits in the tvs room's priority lane (ordinary places unchanged).
        assert (await vip.get("/_wr/status?room=tvs")).json()["state"] == "queued"
        assert (await second.get("/_wr/status?room=tvs")).json()["position"] == 1
        counts = (await room.engine.rooms.counts("tvs"))
        assert (counts.waiting, counts.active) == (2, 1)
