"""Invite links (staff, VIPs): a priority lane that never breaks the cap, never moves
anybody back, and honours use limits, expiry and signatures."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.places import Visitors
from tests.servers import in_process
from waitingroom.engine import Engine, VisitState, room_keys
from waitingroom.middleware import WaitingRoomMiddleware

ROOM = "default"
TOKEN = "ops-token-0123456789abcdef"


async def test_the_priority_lane_is_served_first_and_moves_nobody_back(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("holder")
    assert [(await line.visit(v)).position for v in ("b", "c")] == [1, 2]
    await engine.places.create_invite(ROOM, "inv", uses=2, expires_in_seconds=600)

    first = await engine.places.redeem_invite(ROOM, "inv", "vip1")
    assert first is not None and (first.state, first.position) == (VisitState.WAITING, 1)
    again = await engine.places.redeem_invite(ROOM, "inv", "vip1")  # a retry, a second tab
    assert again is not None and again.position == 1
    assert await engine.places.invite_uses_left(ROOM, "inv") == 1
    second = await engine.places.redeem_invite(ROOM, "inv", "vip2")
    assert second is not None and second.position == 2
    assert await engine.places.redeem_invite(ROOM, "inv", "vip3") is None  # used up

    # Ordinary positions did not go up; the invitees wait in their own lane.
    assert [(await line.visit(v)).position for v in ("b", "c")] == [1, 2]
    assert (await line.visit("vip2")).position == 2
    await engine.release(ROOM, "holder")
    assert (await line.visit("vip1")).state is VisitState.ADMITTED
    assert (await engine.rooms.counts(ROOM)).active == 1  # never over the cap
    await engine.release(ROOM, "vip1")
    assert (await line.visit("vip2")).state is VisitState.ADMITTED
    assert (await line.visit("b")).position == 1


async def test_expired_and_unknown_invites_are_refused(engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=1)
    await engine.places.create_invite(ROOM, "old", uses=5, expires_in_seconds=600)
    await engine.redis.delete(f"wr:{{{ROOM}}}:invite:old")  # as if its time ran out
    assert await engine.places.redeem_invite(ROOM, "old", "v") is None
    assert await engine.places.redeem_invite(ROOM, "never", "v") is None
    assert await engine.redis.zcard(room_keys(ROOM).priority) == 0


@pytest.fixture
def room(make_room: Callable[..., WaitingRoomMiddleware]) -> WaitingRoomMiddleware:
    return make_room(capacity=1, admin_token=(f"ops:{TOKEN}",))


client = in_process


async def make_invite(ops: httpx.AsyncClient, **body: object) -> str:
    response = await ops.post("/_wr/admin/invites", json=body,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 201, response.text
    return response.json()["url"]  # type: ignore[no-any-return]


async def test_an_invite_link_through_http(room: WaitingRoomMiddleware) -> None:
    async with client(room) as ops, client(room) as holder, client(room) as ordinary, \
            client(room) as vip, client(room) as latecomer:
        await holder.get("/checkout")
        await ordinary.get("/checkout")
        url = await make_invite(ops, uses=1, to="/checkout")
        redeemed = await vip.get(url)
        assert (redeemed.status_code, redeemed.headers["location"]) == (303, "/checkout")
        status = (await vip.get("/_wr/status")).json()
        assert (status["state"], status["position"]) == ("queued", 1)
        assert (await ordinary.get("/_wr/status")).json()["position"] == 1
        assert (await latecomer.get(url)).status_code == 403  # used up
        await holder.get("/done")  # releases: the invitee goes first
        assert (await vip.get("/checkout")).text == "origin:/checkout"
        assert (await ordinary.get("/_wr/status")).json()["state"] == "queued"
        audit = await room.engine.rooms.read_audit(ROOM)
        assert audit[0]["action"] == "invite" and audit[0]["who"] == "ops"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example",
                                    "/\\evil.example", "javascript:alert(1)", "/ok\r\nX: y"])
async def test_invites_never_redirect_off_site(room: WaitingRoomMiddleware,
                                               target: str) -> None:
    async with client(room) as ops, client(room) as vip:
        url = await make_invite(ops, uses=1)
        token = httpx.URL(url).params["t"]
        response = await vip.get("/_wr/invite", params={"t": token, "to": target})
    assert response.headers["location"] == "/"


async def test_forged_invites_and_bad_admin_requests(room: WaitingRoomMiddleware) -> None:
    async with client(room) as ops, client(room) as vip:
        url = await make_invite(ops, uses=3)
        token = httpx.URL(url).params["t"]
        forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        assert (await vip.get("/_wr/invite", params={"t": forged})).status_code == 403
        assert (await vip.get("/_wr/invite")).status_code == 403
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for body in ({"uses": 0}, {"uses": "5"}, {"expires_in_seconds": 5}, {"to": "//x"},
                     {"to": "/\\evil.example"}, {"extra": 1}):
            response = await ops.post("/_wr/admin/invites", json=body, headers=auth)
            assert response.status_code == 400, body
        assert (await ops.post("/_wr/admin/invites", json={"uses": 1})).status_code == 401


async def test_someone_already_in_keeps_the_invite_for_others(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("inside")
    await engine.places.create_invite(ROOM, "inv", uses=1, expires_in_seconds=600)
    visit = await engine.places.redeem_invite(ROOM, "inv", "inside")
    assert visit is not None and visit.state is VisitState.ADMITTED
    assert visit.server_ms > 0 and visit.admitted_total == 1
    assert await engine.places.invite_uses_left(ROOM, "inv") == 1
