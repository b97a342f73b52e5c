"""Hostile input to the room's own endpoints (issue 13, findings 9-11): links built
on the visitor's Host, notify-me as a spam cannon, Location headers that cannot be
encoded, and forms whose bytes are not the text they claim to be."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import quote

import httpx
import pytest

from tests.capture.forms import FIELDS, GOOD, csrf_of, stored
from tests.servers import Browser, in_process
from waitingroom.errors import ConfigError
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings

JSON = {"accept": "application/json"}


def _client(app: WaitingRoomMiddleware, host: str = "shop.test") -> httpx.AsyncClient:
    return in_process(app, host=host)


@pytest.fixture
def notifying(make_room: Callable[..., WaitingRoomMiddleware]) -> WaitingRoomMiddleware:
    """Capacity 1 (held by nobody yet), notify-me by webhook, public_url set."""
    return make_room(capacity=1, gated_paths=("/checkout*",),
                     notify_webhook_url="http://127.0.0.1:9/hook",
                     notify_webhook_secret="webhook-secret-0123456789",
                     public_url="https://shop.example",
                     notify_per_hour_per_visitor=2, notify_per_hour_per_network=3)


# 9. Links sent elsewhere are built on public_url; notify-me is bounded and validated.

def test_notify_me_cannot_be_switched_on_without_a_public_url(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(ConfigError, match="public_url"):
        make_settings(smtp_url="smtp://127.0.0.1:25")
    with pytest.raises(ConfigError, match="public_url"):
        make_settings(public_url="https://shop.example/path?x=1")


async def test_the_link_a_visitor_is_sent_ignores_their_host_header(
    notifying: WaitingRoomMiddleware,
) -> None:
    async with _client(notifying) as holder, _client(notifying, "evil.example") as walker:
        await holder.get("/checkout")
        await walker.get("/checkout")
        asked = await walker.post("/_wr/notify", data={"email": "ann@example.com"},
                                  headers=JSON)
        assert asked.status_code == 200
        record = await notifying.engine.redis.hgetall("wr:{default}:notify")
    assert b"https://shop.example" in next(iter(record.values()))
    assert b"evil.example" not in next(iter(record.values()))


async def test_notify_me_is_limited_per_place_and_per_network(
    notifying: WaitingRoomMiddleware,
) -> None:
    async with _client(notifying) as holder, _client(notifying) as one, \
            _client(notifying) as two:
        await holder.get("/checkout")
        for visitor in (one, two):
            await visitor.get("/checkout")
        answers = [(await one.post("/_wr/notify", data={"email": f"a{i}@example.com"},
                                   headers=JSON)).status_code for i in range(3)]
        assert answers == [200, 200, 429]  # two an hour for one place
        assert (await two.post("/_wr/notify", data={"email": "b@example.com"},
                               headers=JSON)).status_code == 200
        # The network's three an hour are spent (all share the test client's address).
        refused = await two.post("/_wr/notify", data={"email": "c@example.com"}, headers=JSON)
        assert refused.status_code == 429 and refused.headers["retry-after"]


@pytest.mark.parametrize("phone", ["07700 900123", "+0 123 456", "+44 7700 900123 ext 5",
                                   "+1234567890123456"])
async def test_numbers_to_text_must_be_e164(notifying: WaitingRoomMiddleware,
                                            phone: str) -> None:
    async with _client(notifying) as holder, _client(notifying) as walker:
        await holder.get("/checkout")
        await walker.get("/checkout")
        answer = await walker.post("/_wr/notify", data={"phone": phone}, headers=JSON)
    assert answer.status_code == 400 and "phone" in answer.json()["errors"]


# 10. Any "to=" gives a working redirect, never a 500 (and never after a link is spent).

@pytest.mark.parametrize("target", ["/caf\u00e9/\u20ac?q=\U0001f600", "/a b", "/%ff",
                                    "//evil.example/", "/\\evil"])
async def test_resume_links_with_any_target_redirect_safely(
    make_room: Callable[..., WaitingRoomMiddleware], target: str,
) -> None:
    room = make_room(capacity=1, gated_paths=("/checkout*",))
    async with _client(room) as holder, _client(room) as phone, _client(room) as laptop:
        await holder.get("/checkout")
        await phone.get("/checkout")
        link = (await phone.get("/_wr/resume-link?to=" + quote(target, safe=""),
                                headers=JSON)).json()
        moved = await laptop.get(link["url"])
    assert moved.status_code == 303
    location = moved.headers["location"]
    assert location.isascii() and location.startswith("/")
    assert not location.startswith("//") and "\\" not in location


async def test_a_query_that_is_not_utf8_gets_400(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capacity=1)
    async with _client(room) as visitor:
        answer = await visitor.get("/_wr/status?room=%ff")
    assert answer.status_code == 400


# 11. A capture is stored exactly as sent, or not at all.

@pytest.fixture
def capturing(make_room: Callable[..., WaitingRoomMiddleware]) -> WaitingRoomMiddleware:
    return make_room(capacity=1, capture="on", capture_fields=FIELDS)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"name=Ann%FFSmith&email=ann%40example.com&plan=monthly&consent=yes",
     "application/x-www-form-urlencoded"),
    (b"name=Ann\xffSmith&email=ann%40example.com&plan=monthly&consent=yes",
     "application/x-www-form-urlencoded"),
    (b'{"name": "Ann \\ud800", "email": "ann@example.com", "plan": "monthly", '
     b'"consent": "yes"}', "application/json"),
    (b'{"name": "Ann \xff", "email": "ann@example.com", "plan": "monthly", "consent": "yes"}',
     "application/json"),
])
async def test_a_capture_that_is_not_utf8_gets_the_form_back_and_is_not_stored(
    capturing: WaitingRoomMiddleware, body: bytes, content_type: str,
) -> None:
    async with _client(capturing) as visitor:
        token = csrf_of((await visitor.get("/checkout")).text)
        csrf = (b"&csrf=" + token.encode() if content_type.endswith("urlencoded")
                else None)
        if csrf is None:
            body = body[:-1] + b', "csrf": "' + token.encode() + b'"}'
        else:
            body += csrf
        answer = await visitor.post("/_wr/capture", content=body,
                                    headers={"content-type": content_type})
        assert answer.status_code == 400 and "UTF-8" in answer.text
        assert 'name="csrf"' in answer.text  # the form again, to send once more
        good = await visitor.post("/_wr/capture", data={**GOOD, "csrf": csrf_of(answer.text)})
        assert good.status_code == 200
    assert [r.fields["name"] for r in await stored(capturing.engine)] == ["Ann Smith"]


async def test_a_link_shown_without_public_url_never_takes_a_hostile_host(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capacity=1)
    async with _client(room) as holder, _client(room) as phone:
        await holder.get("/checkout")
        await phone.get("/checkout")
        page = await phone.get("/_wr/resume-link?to=/checkout",
                               headers={"host": 'evil.example/"><b>x'})
    assert page.status_code == 200
    assert "http://localhost/_wr/resume?" in page.text and "evil.example" not in page.text


async def test_live_event_streams_are_capped_per_process(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    from tests.servers import serve_in_process

    room = make_room(capacity=1, gated_paths=("/checkout*",), max_event_streams=1)
    async with serve_in_process(room) as url, Browser(base_url=url) as holder, \
            Browser(base_url=url) as first, \
            Browser(base_url=url) as second:
        await holder.get("/checkout")
        await first.get("/checkout")
        await second.get("/checkout")
        async with first.stream("GET", "/_wr/events") as stream:
            assert stream.status_code == 200
            await anext(stream.aiter_lines())  # the stream is live and counted
            refused = await second.get("/_wr/events")
            assert refused.status_code == 503 and refused.headers["retry-after"]
        async with asyncio.timeout(15):  # the server sees the hang-up, frees the slot
            while room.limits.event_streams.taken:  # noqa: ASYNC110 (a count, no event)
                await asyncio.sleep(0.01)
        async with second.stream("GET", "/_wr/events") as stream:  # the slot is back
            assert stream.status_code == 200
