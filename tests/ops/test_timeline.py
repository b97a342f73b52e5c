"""A room's timeline: changes planned for set times, applied once by exactly one of
several processes, audited, listed and cancellable; a step whose taker died comes
due again."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

import httpx

from tests.conftest import AUTH
from tests.servers import Origin, cli, eventually, serve_in_process, waitingroom_serve
from waitingroom.engine import Engine


async def test_a_step_applies_once_with_three_processes_running(
    room_env: dict[str, str],
) -> None:
    async with serve_in_process(Origin()) as origin:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin}
        with ExitStack() as stack:
            urls = [stack.enter_context(waitingroom_serve(env)) for _ in range(3)]
            planned = cli(urls[0], "plan", "--in", "4", "capacity=7", "message=Doors open",
                          "stock=120")
            later = cli(urls[1], "plan", "--in", "3600", "mode=closed")
            dropped = cli(urls[2], "plan", "--in", "5", "capacity=1")
            assert [s["id"] for s in cli(urls[2], "timeline")["steps"]] == [
                planned["id"], dropped["id"], later["id"]]  # soonest first
            assert cli(urls[2], "cancel", dropped["id"])["cancelled"]["id"] == dropped["id"]
            async def applied_now() -> bool:  # due in 4 s; each process looks twice a second
                return bool(cli(urls[0], "show")["config"]["capacity"] == 7)
            await eventually(applied_now, "the step applied when due", within=10)
            config = cli(urls[0], "show")["config"]
            assert (config["capacity"], config["message"], config["stock"]) == (
                7, "Doors open", 120)
            await asyncio.sleep(2.5)  # every process has looked again; the 5 s step was due
            applied = [e for e in cli(urls[1], "audit")["entries"]
                       if e["action"].startswith("timeline")]
            assert len(applied) == 1  # once, by one of the three
            assert applied[0]["action"] == f"timeline {planned['id']}"
            assert applied[0]["who"] == "timeline:alice"
            after = applied[0]["after"]
            assert (after["capacity"], after["message"], after["stock"]) == (
                7, "Doors open", 120)
            assert cli(urls[0], "show")["config"]["capacity"] == 7  # the cancelled one: never
            assert [s["id"] for s in cli(urls[0], "timeline")["steps"]] == [later["id"]]
            async with httpx.AsyncClient(base_url=urls[0], headers=AUTH) as ops:
                bad = await ops.post("/_wr/admin/timeline", json={
                    "in_seconds": 5, "changes": {"capacity": 0}})
                twice = await ops.post("/_wr/admin/timeline", json={
                    "in_seconds": 5, "at_ms": 1, "changes": {"capacity": 2}})
                gone = await ops.delete("/_wr/admin/timeline/nosuchstep")
            assert bad.status_code == 400 and "capacity" in bad.json()["error"]
            assert twice.status_code == 400 and gone.status_code == 404


async def test_a_step_whose_taker_died_comes_due_again(engine: Engine) -> None:
    room = "timeline-test"
    await engine.rooms.set_clock(room, 1_000_000)  # the room's own time, moved by the test
    step = await engine.timeline.add(room, {"capacity": 3}, "alice", at_ms=999_000)
    assert [s.id for s in await engine.timeline.due(room)] == [step.id]
    assert await engine.timeline.due(room) == []  # leased: nobody else takes it
    await engine.rooms.set_clock(room, 1_031_000)  # the taker died; its lease ran out
    again = await engine.timeline.due(room)
    assert [s.id for s in again] == [step.id]
    await engine.timeline.done(room, again[0])
    await engine.rooms.set_clock(room, 2_000_000)
    assert await engine.timeline.due(room) == [] and await engine.timeline.steps(room) == []
