"""The admission engine against a real Redis: cap, FCFS, positions, release, grace."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from tests.places import RoomClock, Visitors, pass_time
from waitingroom.engine import (
    BITMAP_CHUNK,
    HEARD_SLOTS,
    LINE_BUCKET,
    Engine,
    VisitState,
    room_keys,
    server_supported,
    too_old_version,
)
from waitingroom.engine.batch import MAX_BATCH
from waitingroom.settings import Settings

ROOM = "launch"


async def age_session(engine: Engine, session: str, seconds: int) -> None:
    """Pretend ``session``'s expiry came ``seconds`` earlier."""
    active = room_keys(ROOM)[2]
    score = await engine.redis.zscore(active, session)
    assert score is not None
    await engine.redis.zadd(active, {session: score - seconds * 1000})


async def test_first_arrivals_walk_in_up_to_capacity(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=2)
    states = [(await line.visit(f"v{i}")).state for i in range(4)]
    assert states == [VisitState.ADMITTED, VisitState.ADMITTED, VisitState.WAITING,
                      VisitState.WAITING]
    assert (await engine.rooms.counts(ROOM)).active == 2


async def test_sessions_ended_by_time_are_not_counted_before_any_sweep(engine: Engine) -> None:
    """A quiet room (nobody asking, so nothing sweeps) tells ops and adaptive capacity
    the sessions still running, not those whose idle time ran out."""
    clock = await RoomClock(engine, ROOM).start()
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=3)
    for name in ("a", "b", "c"):
        await line.visit(name)
    assert (await engine.rooms.counts(ROOM)).active == 3
    await clock.advance(3600)  # every session's idle time is over; no script has run
    assert await engine.redis.zcard(room_keys(ROOM).active) == 3  # not swept yet
    assert (await engine.rooms.counts(ROOM)).active == 0


async def test_positions_are_exact_and_drop_as_people_leave(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    clock = await RoomClock(engine, ROOM).start()
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("in")
    waiting = [f"w{i}" for i in range(5)]
    assert [(await line.visit(w)).position for w in waiting] == [1, 2, 3, 4, 5]
    # w1 walks away; everybody behind moves up by exactly one once the grace passes.
    await pass_time(clock, line, 45, staying=("w0", "w2", "w3", "w4"))
    assert [(await line.visit(w)).position for w in ("w0", "w2", "w3", "w4")] == [
        1, 3, 4, 5]  # within the grace, w1's place is kept
    await pass_time(clock, line, 30, staying=("w0", "w2", "w3", "w4"))
    assert [(await line.visit(w)).position for w in ("w0", "w2", "w3", "w4")] == [
        1, 2, 3, 4]
    assert (await line.visit("w1", join=False)).state is VisitState.NO_PLACE
    assert (await engine.rooms.counts(ROOM)).abandoned == 1


async def test_release_gives_the_slot_to_the_next_in_line(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("first")
    await line.visit("second")
    await line.visit("third")
    assert await engine.release(ROOM, "first")
    assert not await engine.release(ROOM, "first")  # idempotent
    assert (await line.visit("third")).position == 1  # second was admitted
    assert (await line.visit("second")).state is VisitState.ADMITTED
    assert not await engine.touch(ROOM, "first")


async def test_a_stale_head_does_not_block_the_line(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    clock = await RoomClock(engine, ROOM).start()
    await line.visit("holder")
    await line.visit("gone")
    await line.visit("here")
    await pass_time(clock, line, 75, staying=("here",))
    await engine.release(ROOM, "holder")
    assert (await line.visit("here")).state is VisitState.ADMITTED


async def test_a_silence_nobody_could_be_heard_in_costs_nobody_their_place(
    engine: Engine,
) -> None:
    """Four minutes (four graces) in which nothing reached Redis, as in an outage: the
    first calls after it find the line as it was, and walking away is judged afresh
    from then on."""
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    clock = await RoomClock(engine, ROOM).start()
    waiting = ("first", "second", "third")
    for visitor in ("holder", *waiting):
        await line.visit(visitor)
    await pass_time(clock, line, 30, staying=("holder", *waiting))
    await clock.advance(240)
    assert [(await line.visit(v, join=False)).position for v in waiting] == [1, 2, 3]
    assert (await engine.rooms.counts(ROOM)).abandoned == 0
    await pass_time(clock, line, 90, staying=("holder", "first"))  # two never come back
    assert (await line.visit("first", join=False)).position == 1
    assert (await engine.rooms.counts(ROOM)).abandoned == 2


async def test_unclaimed_admission_is_released_after_the_grace(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("holder")
    await line.visit("sleeper")
    await line.visit("next")
    await engine.release(ROOM, "holder")  # admits sleeper, who never comes to claim it
    assert (await line.visit("next")).position == 1
    await age_session(engine, "sleeper", 61)
    assert (await line.visit("next")).state is VisitState.ADMITTED
    assert not await engine.touch(ROOM, "sleeper")


async def test_idle_sessions_expire_and_touch_keeps_them_alive(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("busy")
    await line.visit("waiting")
    await age_session(engine, "busy", 200)  # 100 s of idle left
    assert await engine.touch(ROOM, "busy")  # back to 300 s
    await age_session(engine, "busy", 200)
    assert (await line.visit("waiting")).state is VisitState.WAITING
    await age_session(engine, "busy", 101)
    assert not await engine.touch(ROOM, "busy")
    assert (await line.visit("waiting")).state is VisitState.ADMITTED
    assert (await engine.rooms.counts(ROOM)).expired == 1


async def test_maximum_session_length_holds_however_busy(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("s")
    deadline_key = room_keys(ROOM)[3]
    hard = int(await engine.redis.hget(deadline_key, "s"))
    # Pretend the session began 1790 s ago: touching cannot extend it past its end.
    await engine.redis.hset(deadline_key, "s", hard - 1790 * 1000)
    assert await engine.touch(ROOM, "s")
    expiry = await engine.redis.zscore(room_keys(ROOM)[2], "s")
    assert expiry == hard - 1790 * 1000


async def test_visits_are_idempotent_so_retries_take_no_second_place(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("a")
    for _ in range(3):
        assert (await line.visit("b")).position == 1
    assert (await engine.rooms.counts(ROOM)).waiting == 1
    assert (await line.visit("a")).state is VisitState.ADMITTED
    assert (await engine.rooms.counts(ROOM)).active == 1


async def test_pause_stops_admission_and_resume_restarts_it(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=5)
    await engine.rooms.configure(ROOM, paused=True)
    assert (await line.visit("a")).state is VisitState.WAITING
    await engine.rooms.configure(ROOM, paused=False)
    assert (await line.visit("a")).state is VisitState.ADMITTED


async def test_seed_keeps_a_live_config(engine: Engine) -> None:
    await engine.rooms.seed(ROOM, capacity=5, message="hello")
    await engine.rooms.configure(ROOM, capacity=9)
    await engine.rooms.seed(ROOM, capacity=5, message="other")
    config = await engine.rooms.config(ROOM)
    assert (config.capacity, config.message) == (9, "hello")


async def test_abandonment_with_the_real_clock(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    engine = Engine(Redis.from_url(settings.redis_url), grace_seconds=1,
                    session_idle_seconds=300, session_max_seconds=1800)
    line = Visitors(engine, ROOM)
    try:
        await engine.rooms.seed(ROOM, capacity=1)
        await line.visit("in")
        await line.visit("leaves")
        await line.visit("stays")
        for _ in range(200):  # time must pass in Redis; nothing to await but the clock
            await asyncio.sleep(0.05)
            if (await line.visit("stays")).position == 1:
                break
        assert (await line.visit("stays")).position == 1
        assert (await line.visit("leaves", join=False)).state is VisitState.NO_PLACE
    finally:
        await engine.aclose()


async def test_cap_holds_under_a_concurrent_stampede(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=25)
    visits = await asyncio.gather(*(line.visit(f"v{i:04d}") for i in range(500)))
    admitted = [v for v in visits if v.state is VisitState.ADMITTED]
    assert len(admitted) == 25
    positions = sorted(v.position for v in visits if v.state is VisitState.WAITING)
    assert positions == list(range(1, 476))
    assert (await engine.rooms.counts(ROOM)).active == 25


async def test_a_burst_of_visits_shares_round_trips(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=10)
    await line.visit("warm-up-0000")  # loads the script

    async def evalsha_calls() -> int:
        stats = await engine.redis.info("commandstats")
        return int(stats.get("cmdstat_evalsha", {"calls": 0})["calls"])

    before = await evalsha_calls()
    await asyncio.gather(*(line.visit(f"v{i:011d}") for i in range(200)))
    assert await evalsha_calls() - before <= -(-200 // MAX_BATCH)  # full batches
    assert (await engine.rooms.counts(ROOM)).waiting == 191  # 201 arrivals, 10 let in


async def test_the_admission_rate_caps_admissions_per_minute(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=10)
    await engine.rooms.configure(ROOM, rate=60)  # one a second, bursts of one
    visits = await asyncio.gather(*(line.visit(f"r{i:011d}") for i in range(5)))
    assert [v.state for v in visits].count(VisitState.ADMITTED) == 1
    assert (await line.visit("r00000000001")).position == 1  # FCFS kept
    stats = room_keys(ROOM).stats
    at = int(await engine.redis.hget(stats, "bucket_at"))
    await engine.redis.hset(stats, "bucket_at", at - 5000)  # five seconds pass
    # The bucket holds at most one second's worth: one more, not five.
    assert (await line.visit("r00000000001")).state is VisitState.ADMITTED
    assert (await line.visit("r00000000002")).position == 1
    await engine.rooms.configure(ROOM, rate=0)  # no limit: the free slots fill at once
    assert (await line.visit("r00000000004")).state is VisitState.ADMITTED


async def test_a_closed_room_takes_no_new_places_but_drains_in_order(engine: Engine) -> None:
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    await line.visit("in")
    await line.visit("waiting")
    await engine.rooms.configure(ROOM, mode="closed")
    assert (await line.visit("latecomer")).state is VisitState.NO_PLACE
    assert (await line.visit("waiting")).position == 1
    await engine.release(ROOM, "in")
    assert (await line.visit("waiting")).state is VisitState.ADMITTED


def test_servers_older_than_redis_7_are_refused() -> None:
    assert not server_supported("6.2.14")
    assert server_supported("7.0.15") and server_supported("8.0.1")
    assert server_supported("unknown")  # e.g. a proxy in front: let it try


def test_the_version_check_reads_one_server_or_every_cluster_node() -> None:
    assert too_old_version({"redis_version": "6.0.16", "redis_mode": "standalone"}) == "6.0.16"
    assert too_old_version({"redis_version": "7.2.4"}) is None
    cluster = {"10.0.0.1:6379": {"redis_version": "7.0.15"},
               "10.0.0.2:6379": {"redis_version": "6.2.6"}}
    assert too_old_version(cluster) == "6.2.6"


async def test_the_server_the_tests_run_on_passes_the_check(engine: Engine) -> None:
    assert too_old_version(await engine.redis.info("server")) is None
    await engine.check_server()  # raises ConfigError naming redis_url if too old


async def test_an_unreachable_server_is_not_a_start_up_error() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    unreachable = Engine.from_settings(settings)
    try:
        await unreachable.check_server()
    finally:
        await unreachable.aclose()


async def test_the_line_keeps_no_state_for_arrivals_behind_its_head(engine: Engine) -> None:
    """A room that has seen many arrivals costs what its line costs: once the head has
    passed them, their buckets and bitmap chunks are gone."""
    keys = room_keys(ROOM)
    await engine.rooms.seed(ROOM, capacity=1000)
    clock = await RoomClock(engine, ROOM).start()
    # The line emptied just before a chunk boundary after a long history.
    history = BITMAP_CHUNK - 300
    await engine.redis.set(keys.seq, history)
    await engine.redis.hset(keys.stats, mapping={"head": history, "trimmed": history})
    await engine.rooms.configure(ROOM, paused=True)
    line = Visitors(engine, ROOM)
    arrivals = [f"v{i}" for i in range(600)]
    for visitor in arrivals:
        await line.visit(visitor)
    staying = arrivals[::3]
    await pass_time(clock, line, 75, staying=staying)  # the rest walk away
    assert (await engine.rooms.counts(ROOM)).waiting == len(staying)
    assert await engine.redis.exists(f"{keys.left}:0", f"{keys.left}:1") == 2

    await engine.rooms.configure(ROOM, paused=False)
    while (await engine.rooms.counts(ROOM)).waiting:  # a bounded batch of admissions a call
        await engine.watch(ROOM)
    assert (await line.visit(staying[-1], join=False)).state is VisitState.ADMITTED
    await engine.watch(ROOM)  # the next call trims what the head passed
    leftovers = {k.decode() async for k in engine.redis.scan_iter(f"{keys.line}:*")}
    leftovers |= {k.decode() async for k in engine.redis.scan_iter(f"{keys.heard}:*")}
    leftovers |= {k.decode() async for k in engine.redis.scan_iter(f"{keys.left}:*")}
    head = int(await engine.redis.hget(keys.stats, "head"))
    assert head == history + len(arrivals)
    # At most the bucket and the chunks the next arrival will use.
    assert leftovers <= {f"{keys.line}:{(head + 1) // LINE_BUCKET}", f"{keys.left}:1",
                         *(f"{keys.heard}:{slot}:1" for slot in range(HEARD_SLOTS))}


async def test_a_clock_that_goes_back_gives_nobody_time_again(engine: Engine) -> None:
    """A failover to a Redis whose clock is an hour behind: room time stands still
    instead of going back, so a session does not get that hour of idling again."""
    line = Visitors(engine, ROOM)
    await engine.rooms.seed(ROOM, capacity=1)
    clock = await RoomClock(engine, ROOM).start()
    assert (await line.visit("shopper")).state is VisitState.ADMITTED  # idle 300 s
    await line.visit("next")
    await clock.advance(-3600)
    assert (await line.visit("next", join=False)).position == 1
    await clock.advance(301)  # the shopper has now been idle 301 s of room time
    assert (await line.visit("next", join=False)).state is VisitState.ADMITTED


async def test_the_random_draw_is_fair_and_never_over_capacity(engine: Engine) -> None:
    """Eight waiting, one slot freed: over 400 rounds each is drawn about equally often
    (chi-square, 7 degrees of freedom, well under the 1-in-10,000 bound); first come,
    first served, on the same rounds, always lets in the first."""
    room, waiting = "draw", 8

    async def round_won(method: str, tag: str) -> int:
        await engine.rooms.clear(room)
        await engine.rooms.configure(room, capacity=1, method=method)
        assert (await engine.visit(room, f"{tag}-holder", new=True)).state is VisitState.ADMITTED
        numbers = [(await engine.visit(room, f"{tag}-{i}", new=True)).number
                   for i in range(waiting)]
        await engine.release(room, f"{tag}-holder")
        told = [await engine.visit(room, f"{tag}-{i}", number=n, join=False, claim=False)
                for i, n in enumerate(numbers)]
        won = [i for i, visit in enumerate(told) if visit.state is VisitState.ADMITTED]
        assert len(won) == 1 and (await engine.rooms.counts(room)).active == 1
        return won[0]

    assert {await round_won("fifo", f"f{r}") for r in range(20)} == {0}
    counts = [0] * waiting
    for r in range(400):
        counts[await round_won("random", f"r{r}")] += 1
    expected = 400 / waiting
    chi_square = sum((c - expected) ** 2 / expected for c in counts)
    assert chi_square < 29.88, counts  # p = 0.0001 for 7 degrees of freedom
    assert min(counts) > 0


async def test_every_breaker_change_is_audited_once_with_what_caused_it(
    engine: Engine,
) -> None:
    """Two processes report to one breaker; each change of state is in the audit log
    once, by "breaker", with the figures that caused it (issue 30: the dashboard, the
    audit and the metrics tell one story)."""
    from waitingroom.engine import BreakerPolicy

    policy = BreakerPolicy(window_seconds=10, failure_ratio=0.5, min_requests=4,
                           cooldown_seconds=0, probes=1)
    assert (await engine.breaker.report("r", 1, 1, policy)).state == "closed"
    assert (await engine.breaker.report("r", 0, 3, policy)).state == "open"  # 4 of 5
    assert (await engine.breaker.report("r", 0, 0, policy)).state == "half"  # cooled
    assert (await engine.breaker.report("r", 0, 0, policy)).state == "half"
    assert (await engine.breaker.report("r", 1, 0, policy)).state == "closed"
    entries = [e for e in reversed(await engine.rooms.read_audit("r"))
               if e["action"] == "breaker"]
    assert [(e["who"], e["before"]["state"], e["after"]["state"]) for e in entries] == [
        ("breaker", "closed", "open"), ("breaker", "open", "half"),
        ("breaker", "half", "closed")]
    assert entries[0]["after"]["why"] == {"failures": 4, "requests": 5, "window_seconds": 10}
