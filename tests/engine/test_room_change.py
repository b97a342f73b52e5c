"""One way to change a room (``RoomChange`` and ``lua/change.lua``): checked the same for
every writer, written and audited in one step, made only while its conditions hold."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from waitingroom.engine import Engine, RoomChange, room_keys

ROOM = "launch"


@pytest.mark.parametrize(("body", "said"), [
    ({"capacity": 0}, "capacity must be a whole number 1-10000000"),
    ({"capacity": True}, "capacity must be a whole number 1-10000000"),
    ({"capacity": "5"}, "capacity must be a whole number 1-10000000"),
    ({"mode": "shut"}, "mode must be one of normal, open, closed"),
    ({"paused": "yes"}, "paused must be true or false"),
    ({"message": "x" * 501}, "message must be text of at most 500 characters"),
    ({"messages": {"French": "Bientôt"}}, "messages must map language codes"),
    ({"capacity_min": 5}, "capacity_min and capacity_max go with capacity_mode adaptive"),
    ({"capacity_mode": "adaptive", "capacity_min": 9, "capacity_max": 3},
     "capacity_max must be at least capacity_min"),
    ({"sales_per_session": 0}, "sales_per_session must be a number 0.01-1000"),
    ({"capcity": 5, "moode": 1}, "unknown fields: capcity, moode"),
    ({}, "changes must be a non-empty object"),
    ({"capacity": None}, "capacity must be a whole number 1-10000000"),  # not a pin alone
    ({"mode": None}, "mode must be one of normal, open, closed"),
    ({"capacity": 5, "capacity_mode": None}, "capacity_mode must be one of fixed, adaptive"),
])
def test_a_bad_change_is_said_in_words(body: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError, match="^" + said):
        RoomChange.parse(body)


def test_null_means_something_for_stock_and_message_only() -> None:
    assert RoomChange.parse({"message": None}).as_config() == []  # left as it is
    assert RoomChange.parse({"stock": None}).stock == "off"


def test_a_capacity_set_by_hand_is_pinned_and_null_stock_stops_counting() -> None:
    change = RoomChange.parse({"capacity": 40, "stock": None})
    assert (change.capacity_mode, change.stock) == ("fixed", "off")
    assert change.as_json() == {"capacity": 40, "capacity_mode": "fixed", "stock": None}
    assert RoomChange.parse(change.as_json()) == change  # a timeline step reads back the same


async def _audit(engine: Engine) -> list[dict[str, object]]:
    return await engine.rooms.read_audit(ROOM)


async def test_a_change_writes_and_audits_only_what_changed(engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=5, message="Soon")
    change = RoomChange.parse({"capacity": 5, "paused": True, "stock": 0,
                               "messages": {"fr": "Bientôt"}})
    assert await engine.rooms.change(ROOM, "alice", "update", change)
    entry = (await _audit(engine))[0]
    assert (entry["who"], entry["action"]) == ("alice", "update")
    before, after = entry["before"], entry["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert set(after) == {"paused", "stock", "messages", "message_at_ms",  # capacity: same
                          "sold_out_at_ms"}  # stamped: the stock ran out
    assert (before["paused"], after["paused"]) == (False, True)
    assert (before["stock"], after["stock"]) == (None, 0)
    assert (before["messages"], after["messages"]) == ({}, {"fr": "Bientôt"})
    config = await engine.rooms.config(ROOM)
    assert (config.paused, config.stock, config.message_in("fr")) == (True, 0, "Bientôt")


async def test_a_restock_is_stamped_and_off_stops_counting(engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=5)
    await engine.rooms.configure(ROOM, stock=0)
    sold_out = await engine.rooms.config(ROOM)
    assert sold_out.restocked_at_ms == 0 and sold_out.sold_out_at_ms > 0
    await engine.rooms.configure(ROOM, stock=0)  # sold out still: the moment it ran out stays
    assert (await engine.rooms.config(ROOM)).sold_out_at_ms == sold_out.sold_out_at_ms
    await engine.rooms.configure(ROOM, stock=12)
    assert (await engine.rooms.config(ROOM)).restocked_at_ms > 0
    await engine.rooms.change(ROOM, "ops", "update", RoomChange.parse({"stock": None}))
    assert (await engine.rooms.config(ROOM)).stock is None
    assert (await _audit(engine))[0]["after"] == {"stock": None}


async def test_clearing_the_message_clears_every_language_but_those_given_with_it(
        engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=5)
    await engine.rooms.configure(ROOM, message="Soon", messages={"de": "Bald", "fr": "Bientôt"})
    await engine.rooms.change(ROOM, "ops", "update", RoomChange.parse(
        {"message": "", "messages": {"fr": "Demain"}}))
    config = await engine.rooms.config(ROOM)
    assert (config.message, config.messages) == ("", {"fr": "Demain"})
    await engine.rooms.configure(ROOM, message="")
    assert (await engine.rooms.config(ROOM)).messages == {}


async def test_a_condition_that_no_longer_holds_changes_and_audits_nothing(
        engine: Engine) -> None:
    """Adaptive capacity's way: it sets the cap it judged only while the room is still
    adaptive at the cap it judged; ops who pinned it meanwhile win."""
    await engine.rooms.seed(ROOM, capacity=10)
    await engine.rooms.configure(ROOM, capacity_mode="adaptive", capacity_min=1,
                                 capacity_max=50)
    pinned = RoomChange.parse({"capacity": 30})
    learned = RoomChange(capacity=12)
    only_if = {"capacity_mode": "adaptive", "capacity": "10"}
    await engine.rooms.change(ROOM, "ops", "update", pinned)
    assert not await engine.rooms.change(ROOM, "adaptive", "interval 1", learned,
                                         only_if=only_if)
    assert (await engine.rooms.config(ROOM)).capacity == 30
    assert [e["who"] for e in await _audit(engine)] == ["ops"]


async def test_concurrent_changes_each_audit_what_they_did(engine: Engine) -> None:
    """Fifty writers at once: each entry's before is the state the one before it left
    (read, write and audit are one step, so no two saw the same before)."""
    await engine.rooms.seed(ROOM, capacity=1)
    await asyncio.gather(*(
        engine.rooms.change(ROOM, f"w{n}", "update", RoomChange(capacity=n + 2))
        for n in range(50)))
    entries = list(reversed(await _audit(engine)))
    assert [e["before"]["capacity"] for e in entries[1:]] == [  # type: ignore[index]
        e["after"]["capacity"] for e in entries[:-1]]  # type: ignore[index]
    assert await engine.redis.hget(room_keys(ROOM).config, "capacity") == str(
        entries[-1]["after"]["capacity"]).encode()  # type: ignore[index]


async def test_the_audit_and_the_config_tell_one_story(engine: Engine) -> None:
    """change.lua types the config hash for the audit as RoomStore.config does for the
    dashboard and the CLI: after a change of every live field, each audited value is
    the one the config reads, and the audit knows every field of RoomConfig (a field
    added in Python and not in the script would be missing from the audit)."""
    await engine.rooms.seed(ROOM, capacity=5)
    change = RoomChange.parse({
        "capacity": 9, "paused": True, "mode": "closed", "message": "Soon",
        "messages": {"de": "Bald"}, "capture": "on", "rate": 60, "start_at_ms": 1_000,
        "stock": 3, "max_waiting": 50, "sales_per_session": 1.5, "method": "random",
        "capacity_mode": "adaptive", "capacity_min": 2, "capacity_max": 40})
    await engine.rooms.change(ROOM, "ops", "update", change)
    after = (await engine.rooms.read_audit(ROOM))[0]["after"]
    config = dataclasses.asdict(await engine.rooms.config(ROOM))
    assert isinstance(after, dict)
    assert {k: config[k] for k in after} == after
    assert set(after) | {"restocked_at_ms", "sold_out_at_ms", "next_step_ms"} == set(config)
