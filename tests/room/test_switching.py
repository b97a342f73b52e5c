"""A visitor moving between processes (issue 27, item 6): each process answers
waiters from its own copy of the line, each copy of its own moment. A copy older than
what the visitor was told by another process must neither send a visitor told it was
let in back to the line, nor show a waiter a later position than it was shown.

Two rooms in this process stand for two processes on one Redis. Their copies are
taken only when the test says (:meth:`LineWatch.look`), so which is older is known."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.servers import Browser
from waitingroom.middleware import WaitingRoomMiddleware
from waitingroom.room.room import Room

ROOM = "default"
JSON = {"accept": "application/json"}
A, B = "http://shop.test:8001", "http://shop.test:8002"


class Processes:
    def __init__(self, a: WaitingRoomMiddleware, b: WaitingRoomMiddleware) -> None:
        self.a, self.b = a, b
        self.rooms: dict[str, Room] = {A: a.rooms.default.room, B: b.rooms.default.room}
        self.visits = 0  # visits asked of Redis, by either process
        for room in self.rooms.values():
            room.line._closed = True  # no looks of its own: only those the test makes
            engine, visit = room.engine, room.engine.visit

            async def counted(*args: Any, visit: Any = visit, **kwargs: Any) -> Any:
                self.visits += 1
                return await visit(*args, **kwargs)

            engine.visit = counted  # type: ignore[method-assign]

    def visitor(self) -> httpx.AsyncClient:
        """A browser: one cookie jar for both processes (cookies ignore the port)."""
        return Browser(headers=JSON, mounts={
            A: httpx.ASGITransport(app=self.a), B: httpx.ASGITransport(app=self.b)})


@pytest.fixture
def processes(make_room: Callable[..., WaitingRoomMiddleware]) -> Processes:
    """Two processes of one room (capacity 1), in this one."""
    return Processes(make_room(capacity=1), make_room(capacity=1))


async def test_a_visitor_told_it_was_let_in_is_not_sent_back_by_an_older_copy(
    processes: Processes,
) -> None:
    async with processes.visitor() as first, processes.visitor() as shopper:
        assert (await first.get(A + "/checkout")).status_code == 200
        waiting = await shopper.get(A + "/checkout")
        assert (waiting.status_code, waiting.json()["position"]) == (429, 1)
        await processes.rooms[B].line.look()  # B's copy: the shopper first in line
        assert (await shopper.get(B + "/_wr/status")).json()["position"] == 1

        session = processes.a.app.seen[-1][1]  # type: ignore[attr-defined]
        await processes.a.engine.release(ROOM, session)  # the shopper is let in, in Redis
        await processes.rooms[A].line.look()  # A's copy is newer: it shows the shopper gone
        assert (await shopper.get(A + "/_wr/status")).json()["state"] == "admitted"

        # B's copy still shows the shopper first in line; it must not say so.
        page = await shopper.get(B + "/checkout")
        assert (page.status_code, page.text) == (200, "origin:/checkout")


async def _b_one_place_behind_a(processes: Processes, first: httpx.AsyncClient,
                                 second: httpx.AsyncClient,
                                 third: httpx.AsyncClient) -> None:
    """Three visitors through A; B's copy of the line sees the third at 2; then the
    second is let in and A's copy sees the third at 1 (B's not yet)."""
    assert (await first.get(A + "/checkout")).status_code == 200
    await second.get(A + "/checkout")
    await third.get(A + "/checkout")
    await processes.rooms[B].line.look()  # B's copy: the third at 2
    session = processes.a.app.seen[-1][1]  # type: ignore[attr-defined]
    await processes.a.engine.release(ROOM, session)  # the second is let in
    await processes.rooms[A].line.look()  # A's copy: the third at 1


async def test_a_waiter_on_a_process_with_an_older_copy_is_never_shown_a_later_place(
    processes: Processes,
) -> None:
    async with (processes.visitor() as first, processes.visitor() as second,
                processes.visitor() as third):
        await _b_one_place_behind_a(processes, first, second, third)

        asked = processes.visits
        assert (await third.get(A + "/_wr/status")).json()["position"] == 1
        assert (await third.get(B + "/_wr/status")).json()["position"] == 1  # not 2
        assert processes.visits == asked  # both answered from the copies, no Redis round trip
        await processes.rooms[B].line.look()
        assert (await third.get(B + "/_wr/status")).json()["position"] == 1


async def first_event(app: WaitingRoomMiddleware, client: httpx.AsyncClient,
                      last_event_id: str = "") -> tuple[str, dict[str, Any]]:
    """The first event of ``client``'s event stream from ``app`` (the stream is then
    left at once, as a browser switching process would): its id and its status."""
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items()).encode()
    headers = [(b"host", b"shop.test"), (b"cookie", cookie)]
    if last_event_id:
        headers.append((b"last-event-id", last_event_id.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/_wr/events",
             "raw_path": b"/_wr/events", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("shop.test", 80)}
    events: asyncio.Queue[bytes] = asyncio.Queue()

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the visitor stays until the stream is left
        return {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            events.put_nowait(message.get("body", b""))

    stream = asyncio.create_task(app(scope, receive, send))
    try:
        body = await events.get()
    finally:
        stream.cancel()
    fields = dict(line.split(": ", 1) for line in body.decode().strip().split("\n"))
    return fields.get("id", ""), json.loads(fields["data"])


async def test_an_event_stream_reconnecting_to_an_older_copy_never_shows_a_later_place(
    processes: Processes,
) -> None:
    """An event stream cannot set cookies after its first event; each event's id says
    what was told, and the browser sends it back when it reconnects (to any process)."""
    async with (processes.visitor() as first, processes.visitor() as second,
                processes.visitor() as third):
        await _b_one_place_behind_a(processes, first, second, third)
        told, status = await first_event(processes.a, third)
        assert status["position"] == 1 and told.endswith(".1")
        _, status = await first_event(processes.b, third, last_event_id=told)
        assert status["position"] == 1  # not 2, from B's older copy
