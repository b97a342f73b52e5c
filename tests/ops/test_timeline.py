"""A room's timeline: changes planned for set times, applied once by exactly one of
several processes, audited, listed and cancellable; a step whose taker died comes
due again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import AUTH
from tests.servers import Browser, Origin, cli, eventually, serve_in_process, waitingroom_serve
from waitingroom.config import load_settings
from waitingroom.engine import Engine
from waitingroom.errors import ConfigError
from waitingroom.middleware import WaitingRoomMiddleware


@pytest.mark.serial  # its steps are due in seconds: alone, before the parallel lane
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
            async with Browser(base_url=urls[0], headers=AUTH) as ops:
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


async def test_the_config_files_timeline_is_applied_once_and_stays_done_after_restarts(
    room_env: dict[str, str], tmp_path: Path,
) -> None:
    config = tmp_path / "room.toml"
    config.write_text('[[timeline]]\nat = "2020-01-01T09:00:00Z"\ncapacity = 9\n'
                      'message = "Doors open"\n\n'
                      '[[timeline]]\nat = "2099-01-01T18:00:00+01:00"\nmode = "closed"\n')
    async with serve_in_process(Origin()) as origin:
        env = {**room_env, "WAITINGROOM_ORIGIN": origin}
        with waitingroom_serve(env, "--config", str(config)) as url:
            async def applied() -> bool:  # the 2020 step is due at once
                return bool(cli(url, "show")["config"]["capacity"] == 9)
            await eventually(applied, "the config file's due step applied", within=5)
            later = cli(url, "timeline")["steps"]
            assert [(s["at_ms"], s["changes"], s["who"]) for s in later] == [
                (4070970000000, {"mode": "closed"}, "config")]
            cli(url, "cancel", later[0]["id"])
            cli(url, "capacity", "11")  # ops moved on since
        with ExitStack() as stack:  # restarted, twice at once: nothing comes back
            urls = [stack.enter_context(waitingroom_serve(env, "--config", str(config)))
                    for _ in range(2)]
            assert cli(urls[0], "timeline")["steps"] == []
            await asyncio.sleep(1.5)  # each process has looked for due steps again
            assert cli(urls[1], "show")["config"]["capacity"] == 11
            applied_steps = [e for e in cli(urls[1], "audit")["entries"]
                             if e["action"].startswith("timeline")]
            assert [(e["who"], e["after"]["capacity"]) for e in applied_steps] == [
                ("timeline:config", 9)]


def test_a_config_files_timeline_that_cannot_be_used_stops_start_up(
    make_room: Callable[..., WaitingRoomMiddleware], tmp_path: Path,
) -> None:
    config = tmp_path / "room.toml"
    for text, problem in (
            ('[[timeline]]\nat = "09:00"\ncapacity = 9\n', "ISO 8601"),
            ('[[timeline]]\nat = "2026-12-01T09:00:00"\ncapacity = 9\n', "time zone"),
            ('[[timeline]]\nat = "2026-12-01T09:00:00Z"\n', "list of steps"),
            ('timeline = "[{"\n', "list of steps")):
        config.write_text(text)
        with pytest.raises(ConfigError) as refused:
            load_settings(config_file=config, environ={})
        assert refused.value.key == "timeline (in room.toml)" and problem in str(refused.value)
    for changes, problem in (({"capacity": 0}, "capacity"), ({"shoe_size": 9}, "shoe_size")):
        planned = ((0, json.dumps(changes)),)
        with pytest.raises(ConfigError) as refused:
            make_room(timeline=planned)
        assert refused.value.key == "timeline" and problem in str(refused.value)
        assert "step 1" in str(refused.value)
    steps = [{"at": "2026-12-01T09:00:00Z", "rate": n} for n in range(101)]
    with pytest.raises(ConfigError, match="at most 100"):
        load_settings(environ={"WAITINGROOM_TIMELINE": json.dumps(steps)})
    one = load_settings(environ={"WAITINGROOM_TIMELINE": json.dumps(steps[:1])})
    assert one.timeline == ((1796115600000, '{"rate": 0}'),)
