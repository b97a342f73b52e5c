"""``/_wr/metrics`` as Prometheus aggregates it (issue 30): two ``serve`` processes on one
Redis, visitors moving between them; every room-wide series reads the same from both
(so ``max by (room)`` is the truth and ``sum`` is not), every per-process series adds
up over the processes (so ``sum`` is), and a metrics token reads the metrics and
nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import AUTH, SECRET, TOKEN
from tests.servers import Browser, Origin, serve_in_process, waitingroom_serve
from waitingroom.middleware import WaitingRoomMiddleware

SCRAPER = "scraper-token-0123456789abcdef"
JSON = {"accept": "application/json"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    """Every sample of a scrape, keyed by name and labels (process_* left out)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("waitingroom_")}


@pytest.mark.slow
async def test_room_wide_series_agree_across_processes_and_per_process_ones_add_up(
    redis_url: str,
) -> None:
    async with serve_in_process(Origin()) as origin:
        env = {"WAITINGROOM_REDIS_URL": redis_url, "WAITINGROOM_SECRET": SECRET,
               "WAITINGROOM_ORIGIN": origin, "WAITINGROOM_CAPACITY": "2",
               "WAITINGROOM_GATED_PATHS": "/checkout*", "WAITINGROOM_ROOM": "metrics",
               "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "0",
               "WAITINGROOM_ADMIN_TOKEN": TOKEN, "WAITINGROOM_METRICS_TOKEN": SCRAPER}
        with contextlib.ExitStack() as stack:
            a, b = [await asyncio.to_thread(stack.enter_context, waitingroom_serve(env))
                    for _ in range(2)]
            visitors = [Browser(headers=JSON) for _ in range(5)]
            try:
                for i, visitor in enumerate(visitors):  # 2 admitted, 3 in line
                    await visitor.get((a if i % 2 else b) + "/checkout/x")
                polls = {a: 0, b: 0}
                for i, visitor in enumerate(visitors[2:] * 3):  # waiters switch process
                    url = a if i % 3 else b
                    assert (await visitor.get(url + "/_wr/status")).json()["state"] == "queued"
                    polls[url] += 1
                await visitors[0].get(b + "/checkout/buy")  # its session ends: a slot frees
                for _ in range(100):  # the first waiter asks on a until let in
                    polls[a] += 1
                    state = (await visitors[2].get(a + "/_wr/status")).json()["state"]
                    if state == "admitted":
                        break
                    await asyncio.sleep(0.05)
                assert state == "admitted"
                scrapes = []
                for url in (a, b):
                    answer = await visitors[0].get(
                        url + "/_wr/metrics", headers={"authorization": f"Bearer {SCRAPER}"})
                    assert answer.status_code == 200
                    scrapes.append(_samples(answer.text))
            finally:
                await asyncio.gather(*(v.aclose() for v in visitors))
    room = (("room", "metrics"),)
    truth = {"waitingroom_queue_length": 2, "waitingroom_active_sessions": 2,
             "waitingroom_capacity": 2, "waitingroom_admitted_total": 3}
    for name, value in truth.items():  # max is the truth; sum would double it
        assert [scrape[(name, room)] for scrape in scrapes] == [value, value], name
    room_wide = {key for key in scrapes[0] if ("room", "metrics") in key[1]
                 and not key[0].startswith(("waitingroom_wait_seconds",
                                            "waitingroom_origin_answers"))}
    assert room_wide and all(scrapes[0][k] == scrapes[1][k] for k in room_wide)
    assert scrapes[0][("waitingroom_breaker_state", (*room, ("state", "closed")))] == 1
    assert scrapes[0][("waitingroom_breaker_state", (*room, ("state", "open")))] == 0
    # Per process: each counts its own polls; their sum is every poll.
    poll_count = [scrape[("waitingroom_request_seconds_count", (("kind", "poll"),))]
                  for scrape in scrapes]
    assert poll_count == [polls[a], polls[b]] and sum(poll_count) == sum(polls.values())
    # So does every other per-process series: five first visits of two requests each
    # (the arrival page, then the place: visitors 1 and 3 on a, the rest on b) and a
    # purchase on b; the three that reached the origin and its three good answers; the
    # one wait, of the waiter let in on a.
    def each(name: str, *labels: tuple[str, str]) -> list[float]:
        return [scrape[(name, tuple(sorted(labels)))] for scrape in scrapes]

    assert each("waitingroom_request_seconds_count", ("kind", "gated")) == [4, 7]
    assert each("waitingroom_request_seconds_count", ("kind", "origin")) == [1, 2]
    assert each("waitingroom_origin_answers_total", *room, ("outcome", "ok")) == [1, 2]
    assert each("waitingroom_origin_answers_total", *room, ("outcome", "error")) == [0, 0]
    assert each("waitingroom_wait_seconds_count", *room) == [1, 0]
    per_process = {key[0] for key in scrapes[0]} - {key[0] for key in room_wide}
    assert all(t > 0 for t in each("waitingroom_redis_latency_seconds"))  # its own PING
    checked = {"waitingroom_request_seconds_count", "waitingroom_origin_answers_total",
               "waitingroom_wait_seconds_count", "waitingroom_redis_up",
               "waitingroom_redis_latency_seconds"}
    assert {n for n in per_process if not n.endswith(("_bucket", "_sum", "_created"))} \
        == checked  # a new per-process series gets its check here
    assert all(scrape[("waitingroom_redis_up", ())] == 1 for scrape in scrapes)


async def test_a_metrics_token_reads_the_metrics_and_nothing_else(
    make_room: Callable[..., WaitingRoomMiddleware],
) -> None:
    room = make_room(admin_token=(f"alice:{TOKEN}",), metrics_token=(SCRAPER,))
    scraper = {"authorization": f"Bearer {SCRAPER}"}
    transport = httpx.ASGITransport(app=room)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as ops:
        assert (await ops.get("/_wr/metrics", headers=scraper)).status_code == 200
        assert (await ops.get("/_wr/metrics", headers=AUTH)).status_code == 200
        assert (await ops.get("/_wr/metrics")).status_code == 401
        assert (await ops.post("/_wr/metrics", headers=scraper)).status_code == 405
        for path in ("/_wr/admin/room", "/_wr/admin/audit", "/_wr/admin/events"):
            assert (await ops.get(path, headers=scraper)).status_code == 401, path
        assert (await ops.post("/_wr/admin/room", json={"capacity": 99},
                               headers=scraper)).status_code == 401
    alone = make_room(metrics_token=(SCRAPER,))
    transport = httpx.ASGITransport(app=alone)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as ops:
        assert (await ops.get("/_wr/metrics", headers=scraper)).status_code == 200
        assert (await ops.get("/_wr/admin/room", headers=scraper)).status_code == 404
