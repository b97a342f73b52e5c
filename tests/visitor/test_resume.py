"""Continue on another device: the place moves at the same position, the old device
stops holding it, and a link works once."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.servers import Browser
from waitingroom.middleware import WaitingRoomMiddleware

JSON = {"accept": "application/json"}


async def test_a_place_moves_to_another_device_once_and_keeps_its_position(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capacity=1, gated_paths=("/checkout*", "/done"))
    transport = httpx.ASGITransport(app=room)

    def client() -> httpx.AsyncClient:
        return Browser(transport=transport, base_url="http://shop.test")

    async with client() as holder, client() as first, client() as phone, \
            client() as laptop, client() as stranger:
        for visitor in (holder, first, phone):
            await visitor.get("/checkout")
        page = await phone.get("/checkout")
        assert "/_wr/resume-link?" in page.text  # offered on the queue page
        link = (await phone.get("/_wr/resume-link?to=/checkout/basket",
                                headers=JSON)).json()
        assert link["expires_in_seconds"] == 600

        moved = await laptop.get(link["url"])
        assert moved.status_code == 303 and moved.headers["location"] == "/checkout/basket"
        assert (await laptop.get("/_wr/status")).json()["position"] == 2  # exact
        old = (await phone.get("/_wr/status")).json()
        assert old["state"] == "moved" and old["position"] is None
        assert "on your other device" in (await phone.get("/checkout")).text
        assert (await room.engine.rooms.counts("default")).waiting == 2  # no second place

        assert (await stranger.get(link["url"])).status_code == 403  # used once
        forged = link["url"].replace("t=", "t=x")
        assert (await stranger.get(forged)).status_code == 403
        assert (await stranger.get("/_wr/resume-link", headers=JSON)).status_code == 404

        await holder.get("/done")  # a place frees: first goes in, the laptop is next
        assert (await first.get("/_wr/status")).json()["state"] == "admitted"
        assert (await laptop.get("/_wr/status")).json()["position"] == 1


async def test_the_link_page_draws_the_qr_code_here_and_only_for_real_links(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capacity=1)
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as a, \
            Browser(transport=transport, base_url="http://shop.test") as b:
        await a.get("/x")
        await b.get("/x")
        page = await b.get("/_wr/resume-link?to=//evil.example/")
        assert "http://shop.test/_wr/resume?" in page.text
        assert "evil.example" not in page.text  # the target is checked
        german = await b.get("/_wr/resume-link?to=/x&lang=de")
        assert "Zurück zur Warteschlange" in german.text and 'hreflang="fr"' in german.text
        src = page.text.split('<img src="')[1].split('"')[0].replace("&amp;", "&")
        qr = await b.get(src)
        assert qr.headers["content-type"] == "image/svg+xml"
        assert qr.text.startswith("<svg") and "<path" in qr.text
        assert (await b.get("/_wr/qr.svg?t=made-up")).status_code == 404
