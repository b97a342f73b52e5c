"""Notify me: a visitor leaves an address and walks away; when admitted they get one
email (real SMTP, aiosmtpd) and one signed webhook, and the link admits them once."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from email import message_from_bytes, policy

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from tests.places import RoomClock
from tests.servers import (
    Browser,
    Mailbox,
    Origin,
    cli,
    eventually,
    ops_and_shop,
    read_body,
    serve_in_process,
)
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import free_port
from waitingroom.visitor.notify_delivery import Notice, Notifier

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
WEBHOOK_SECRET = "webhook-secret-0123456789"


class _Webhook:
    """A webhook receiver: keeps each body with its signature header."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []
        self.called = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        self.calls.append((body, dict(scope["headers"]).get(
            b"x-waitingroom-signature", b"").decode()))
        self.called.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.slow
async def test_a_notified_visitor_gets_one_message_and_the_link_admits_once(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    mailbox, webhook = Mailbox(), _Webhook()
    smtp = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    origin = Origin()
    try:
        async with serve_in_process(webhook) as hook_url:
            room = make_room(origin, capacity=1, gated_paths=("/checkout*", "/done"),
                             smtp_url=f"smtp://127.0.0.1:{smtp.port}", notify_webhook_url=hook_url,
                             public_url="https://shop.example",
                             notify_webhook_secret=WEBHOOK_SECRET, notify_claim_seconds=900)
            try:
                await _drive(room, origin, mailbox, webhook)
            finally:
                await room.aclose()
    finally:
        smtp.stop()


async def _drive(room: WaitingRoomMiddleware, origin: Origin, mailbox: Mailbox,
                 webhook: _Webhook) -> None:
    transport = httpx.ASGITransport(app=room)

    def client() -> httpx.AsyncClient:
        return Browser(transport=transport, base_url="http://shop.test")

    async with client() as holder, client() as walker, client() as later, \
            client() as stranger:
        await holder.get("/checkout")
        page = await walker.get("/checkout")
        assert 'action="/_wr/notify?room=default"' in page.text
        wrong = await walker.post("/_wr/notify", data={"email": "nope", "to": "/checkout"})
        assert wrong.status_code == 400 and 'class="err"' in wrong.text  # the form again
        assert 'name="email"' in wrong.text
        huge = await walker.post("/_wr/notify", data={"email": "a" * 2000})
        assert huge.status_code == 413
        asked = await walker.post("/_wr/notify", headers={"accept": "application/json"},
                                  data={"email": "ann@example.com", "phone": "+44 7700 900123",
                                        "to": "/checkout"})
        assert asked.status_code == 200 and asked.json()["state"] == "notify"
        bad = await later.post("/_wr/notify", data={"email": "nope", "to": "/checkout"},
                               follow_redirects=False)  # holds no place: back to the page,
        assert (bad.status_code, bad.headers["location"]) == (303, "/checkout")  # a place
        for elsewhere in ("//evil.example/", "/\\evil.example", "https://evil.example/"):
            sent_off = await later.post("/_wr/notify", data={"to": elsewhere},
                                        follow_redirects=False)
            assert sent_off.headers["location"] == "/", elsewhere  # never off the site
        told = await later.post("/_wr/notify", headers={"accept": "application/json"},
                                data={"email": "bo@example.com"})
        assert told.status_code == 404 and told.json()["error"] == "no place in line"
        assert not mailbox.messages and not webhook.calls  # not their turn yet

        await holder.get("/done")  # a slot frees: the walker is admitted, while away
        assert await asyncio.to_thread(mailbox.arrived.wait, 15)
        message = message_from_bytes(mailbox.messages[0], policy=policy.default)
        assert message["To"] == "ann@example.com"
        # Built on public_url, whatever Host the visitor's requests carried.
        link = re.search(r"https://shop\.example(/_wr/claim\?\S+)", message.get_content())
        assert link is not None
        assert "within the next 15 minutes" in message.get_content()  # notify_claim_seconds
        await asyncio.wait_for(webhook.called.wait(), 15)  # sent beside the email
        body, signature = webhook.calls[0]
        expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, f"sha256={expected}")
        sent = json.loads(body)
        assert sent["phone"] == "+447700900123"  # E.164, as SMS gateways take it
        assert sent["url"] == "https://shop.example" + link.group(1)

        claimed = await later.get(link.group(1))
        assert claimed.status_code == 303 and claimed.headers["location"] == "/checkout"
        assert (await later.get("/checkout")).text == "origin:/checkout"
        again = await later.get(link.group(1))  # the same phone, the email opened again
        assert again.status_code == 303 and again.headers["location"] == "/checkout"
        walker_id = origin.seen[-1][1]
        assert walker_id and (await stranger.get(link.group(1))).status_code == 403
        assert len({s for _, s in origin.seen if s}) == 2  # the holder, then the walker
        assert len(mailbox.messages) == 1 and len(webhook.calls) == 1  # exactly one each
        assert await room.engine.redis.hlen("wr:{default}:notify") == 0  # address gone


@pytest.mark.slow
async def test_an_away_visitor_is_told_when_a_session_just_runs_out(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    """Nobody polls and nobody finishes: the only shopper's session ends by its idle
    timeout. The room's upkeep must still let the away visitor in, and tell them."""
    mailbox = Mailbox()
    smtp = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    room = make_room(capacity=1, gated_paths=("/checkout*",),
                     smtp_url=f"smtp://127.0.0.1:{smtp.port}", public_url="https://shop.example")
    transport = httpx.ASGITransport(app=room)
    try:
        async with Browser(transport=transport, base_url="http://shop.test") as holder, \
                Browser(transport=transport, base_url="http://shop.test") as walker:
            clock = await RoomClock(room.engine, "default").start()
            assert (await holder.get("/checkout")).text == "origin:/checkout"
            await walker.get("/checkout")
            asked = await walker.post("/_wr/notify", data={"email": "bo@example.com"},
                                      headers={"accept": "application/json"})
            assert asked.json()["state"] == "notify"
            await clock.advance(3600)  # the holder's session has long run out
            assert await asyncio.to_thread(mailbox.arrived.wait, 15)
        assert message_from_bytes(mailbox.messages[0], policy=policy.default)["To"] == (
            "bo@example.com")
    finally:
        await room.aclose()  # before its mail server goes: nothing sent to a dead port
        smtp.stop()


async def test_the_notify_pages_speak_french_and_lead_back_to_the_line(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capacity=1, smtp_url="smtp://127.0.0.1:9", public_url="https://shop.example",
                     notify_claim_seconds=600)
    french = {"Accept-Language": "fr"}
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test") as a, \
            Browser(transport=transport, base_url="http://shop.test") as b:
        await a.get("/checkout")
        await b.get("/checkout")
        wrong = await b.post("/_wr/notify", headers=french,
                             data={"phone": "0612", "to": "/checkout"})
        assert wrong.status_code == 400 and "veuillez saisir un numéro" in wrong.text
        done = await b.post("/_wr/notify", headers=french,
                            data={"email": "bo@example.com", "to": "/checkout"})
        assert done.status_code == 200 and "10 minutes pour l&#39;ouvrir" in done.text
        assert '<a href="/checkout">Retour à la file</a>' in done.text


async def test_a_restock_tells_those_who_left_their_details_once(
    room_env: dict[str, str],
) -> None:
    """Two serve processes, a real SMTP server: each detail left before the restock is
    told once; one left after it waits for the next."""
    mailbox = Mailbox()
    smtp = aiosmtpd_controller.Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    env = {**room_env, "WAITINGROOM_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
           "WAITINGROOM_PUBLIC_URL": "https://shop.example"}
    try:
        async with ops_and_shop(env, visitors=4) as (ops_url, _, (buyer, ann, bob, cy)):
            cli(ops_url, "stock", "1")
            assert (await buyer.get("/checkout")).text.startswith("origin:")
            assert (await buyer.get("/checkout/buy")).status_code == 200  # sold out
            await asyncio.sleep(1.1)
            for client, email in ((ann, "ann@example.com"), (bob, "bob@example.com")):
                assert await leave_interest(client, email)
            cli(ops_url, "stock", "5")  # restock: both are told, each once
            async def both_told() -> bool:
                return len(mailbox.messages) >= 2
            await eventually(both_told, "both told of the restock", within=10)
            assert await leave_interest(cy, "cy@example.com")  # after it: not this time
            await asyncio.sleep(2)  # both processes have looked again
        told = [message_from_bytes(m, policy=policy.default) for m in mailbox.messages]
        assert sorted(m["To"] for m in told) == ["ann@example.com", "bob@example.com"]
        assert all(m["Subject"] == "More stock is in" for m in told)
        assert "https://shop.example/" in told[0].get_content()
    finally:
        smtp.stop()


async def leave_interest(client: httpx.AsyncClient, email: str) -> bool:
    """Fill in the form for hearing of more stock; True once it is stored."""
    form = (await client.get("/_wr/interest")).text
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    sent = await client.post("/_wr/interest", data={
        "csrf": csrf, "name": "A Shopper", "email": email, "product": "waitPhone",
        "consent": "yes"})
    return sent.status_code == 200 and "WI-" in sent.text


async def test_a_notice_cut_off_by_shutdown_is_logged_without_its_address(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture,
) -> None:
    """The webhook takes the notice and never answers; the process stops meanwhile."""
    took, released = asyncio.Event(), asyncio.Event()

    async def hangs(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            took.set()
            await released.wait()  # no answer while the test runs
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async with serve_in_process(hangs) as hook_url:
        notifier = Notifier(make_settings(
            notify_webhook_url=hook_url, notify_webhook_secret=WEBHOOK_SECRET,
            public_url="https://shop.example"))
        sending = asyncio.create_task(notifier.send(
            Notice("default", "", "+447700900123", "https://shop.example/x")))
        await asyncio.wait_for(took.wait(), 5)
        sending.cancel()
        await asyncio.wait({sending})
        released.set()  # lets the receiver's server stop
    assert sending.cancelled()
    assert "a notice for room default was not sent: the process stopped first" in caplog.text
    assert "+447700900123" not in caplog.text
