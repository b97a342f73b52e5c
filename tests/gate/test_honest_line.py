"""The honest line. Stock: ops set it or the origin reports it; sales count it down; at
0 the room is sold out for every process at once, and a restock reopens the line with
places kept. Queue full: past its longest, the line gives no place it cannot keep.
Real ``waitingroom serve`` processes, the test origin, real Redis."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import httpx

from tests.conftest import AUTH
from tests.servers import Browser, cli, eventually, ops_and_shop
from waitingroom.engine import Engine, VisitState
from waitingroom.tickets import new_visitor_id


async def state_of(client: httpx.AsyncClient) -> dict[str, object]:
    answer = await client.get("/_wr/status")
    return answer.json()  # type: ignore[no-any-return]


async def test_selling_out_stops_the_line_everywhere_and_a_restock_reopens_it(
    room_env: dict[str, str],
) -> None:
    async with ops_and_shop(room_env, visitors=4) as (ops_url, _, (ann, bob, cy, di)):
        assert cli(ops_url, "stock", "1")["config"]["stock"] == 1
        cli(ops_url, "message", "Selling", "fast!")
        assert (await ann.get("/checkout")).status_code == 200  # capacity 1: Ann is in
        async with Browser(base_url=ops_url) as eve:  # on the other process
            assert "wr-card" in (await bob.get("/checkout")).text  # Bob waits, 1st
            assert "wr-card" in (await eve.get("/checkout")).text  # Eve waits, 2nd
            bought = await ann.get("/checkout/buy")  # the last unit
            assert bought.status_code == 200
            assert "x-waitingroom-sold" not in bought.headers  # a signal to us, not them

            async def told_everywhere() -> bool:
                return ((await state_of(bob))["state"] == "sold_out"
                        and (await state_of(eve))["state"] == "sold_out")
            # Within a few seconds: each process re-reads the room every second, and a
            # loaded host (the parallel lane) can take longer than the default bound.
            await eventually(told_everywhere, "every waiter, on both processes, told",
                             within=5)
            assert (await state_of(bob))["position"] == 1  # kept, for a restock
            assert (await state_of(eve))["position"] == 2
            # Sold out: nobody more is let in, though Ann's slot is free. Bob's page
            # says so and only so: no wait, no chance of the stock reaching him, and a
            # way to hear of a restock.
            page = (await bob.get("/checkout")).text
            assert "wr-card" in page and 'id="wr-wait" hidden' in page
            assert '<p class="chance" id="wr-chance" data-level=""></p>' in page
            assert 'id="wr-interest">' in page  # shown, not left out
            assert (await state_of(bob)).get("chance") is None
            # "Selling fast!" no longer says the truth: not shown while sold out; a
            # message posted since is.
            assert (await state_of(bob))["message"] is None and "Selling fast" not in page
            shown = cli(ops_url, "show")  # ops are told the same: kept, but not shown
            assert shown["config"]["message_shown"] is False
            assert shown["eta_last_seconds"] is None  # nobody is let in: no wait to tell
            assert shown["config"]["message"] == "Selling fast!"
            cli(ops_url, "message", "More", "on", "Friday")

            async def told_friday() -> bool:
                return (await state_of(eve))["message"] == "More on Friday"
            await eventually(told_friday, "a message posted while sold out is shown",
                             within=5)
            newcomer = await cy.get("/checkout")
            assert newcomer.status_code == 200 and "Sold out" in newcomer.text
            assert "wr-card" not in newcomer.text  # told the truth, given no place
            show = cli(ops_url, "show")
            assert show["counts"]["waiting"] == 2 and show["sales"]["sold"] == 1
            assert show["config"]["stock"] == 0

            cli(ops_url, "stock", "5")  # restock: the line moves on, in its order

            async def bob_let_in() -> bool:
                return (await state_of(bob))["state"] == "admitted"
            await eventually(bob_let_in, "the first in line let in after the restock",
                             within=5)

            async def eve_first() -> bool:  # her process's next look at the line says so
                return (await state_of(eve))["position"] == 1
            await eventually(eve_first, "Eve first in line once Bob is in", within=5)
            assert (await di.get("/checkout")).status_code == 200  # newcomers join again
            assert (await state_of(di))["position"] == 2  # behind Eve
        audit = cli(ops_url, "audit")["entries"]
        stocks = [(e["before"].get("stock"), e["after"].get("stock")) for e in audit
                  if "stock" in e["after"]]
        assert stocks[:2] == [(0, 5), (None, 1)]  # newest first: the restock, the start


async def test_the_origin_reports_stock_on_its_answers(room_env: dict[str, str]) -> None:
    async with ops_and_shop(room_env, visitors=2) as (ops_url, _, (ann, bob)):
        assert (await ann.get("/checkout")).status_code == 200
        nonsense = await ann.get("/checkout/stock/many")  # not a number: ignored
        assert nonsense.status_code == 200 and "x-waitingroom-stock" not in nonsense.headers
        assert cli(ops_url, "show")["config"]["stock"] is None
        assert (await ann.get("/checkout/stock/0")).status_code == 200
        assert cli(ops_url, "show")["config"]["stock"] == 0
        answer = await bob.get("/checkout")
        assert "Sold out" in answer.text and "wr-card" not in answer.text
        entry = cli(ops_url, "audit")["entries"][0]
        assert (entry["who"], entry["action"], entry["after"]["stock"]) == ("origin", "stock", 0)
        assert set(entry["after"]) == {"stock", "sold_out_at_ms"}  # when it ran out
        async with Browser(base_url=ops_url, headers=AUTH) as ops:
            stopped = await ops.post("/_wr/admin/room", json={"stock": None})
            refused = await ops.post("/_wr/admin/room", json={"stock": -1})
        assert stopped.json()["config"]["stock"] is None  # not counting any more
        assert refused.status_code == 400 and "stock" in refused.json()["error"]


async def test_a_full_line_refuses_the_next_arrival_without_taking_a_place(
    room_env: dict[str, str], engine: Engine,
) -> None:
    async with ops_and_shop(room_env, visitors=2) as (ops_url, _, (holder, late)):
        assert cli(ops_url, "max-waiting", "1000")["config"]["max_waiting"] == 1000
        assert (await holder.get("/checkout")).status_code == 200  # capacity 1: in
        joined = await asyncio.gather(*(engine.visit("default", new_visitor_id(), new=True)
                                        for _ in range(1000)))
        assert [v.state for v in joined].count(VisitState.WAITING) == 1000
        assert max(v.position for v in joined) == 1000

        async def refused() -> bool:  # the serve process reads the limit within a second
            return "The line is full" in (await late.get("/checkout")).text
        await eventually(refused, "the 1,001st told the line is full")
        assert (await late.get("/_wr/status")).json()["state"] == "full"
        overflow = await engine.visit("default", new_visitor_id(), new=True)
        assert overflow.state is VisitState.FULL and overflow.number == 0
        full_page = (await late.get("/checkout")).text
        assert "/_wr/interest?room=default" in full_page  # offered: leave details instead
        form = await late.get("/_wr/interest")
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        sent = await late.post("/_wr/interest", data={
            "csrf": csrf, "name": "Bo Example", "email": "bo@example.com", "consent": "yes"})
        assert sent.status_code == 200 and "WI-" in sent.text
        assert await engine.captures.count("default", interest=True) == 1
        counts = cli(ops_url, "show")["counts"]
        assert counts["waiting"] == 1000  # nobody was given a place they cannot use

        cli(ops_url, "max-waiting", "1001")  # one more place: the next arrival gets it

        async def joined_at_the_back() -> bool:
            return (await late.get("/_wr/status")).json().get("position") == 1001
        await eventually(joined_at_the_back, "a place once the limit was raised")


async def test_each_waiter_is_told_their_chance_and_it_does_not_flicker(
    room_env: dict[str, str], engine: Engine,
) -> None:
    """A line of 1,000, stock 100, half a unit a session: the stock reaches about place
    200 (199: the one shopper inside buys first)."""
    async with ops_and_shop(room_env, visitors=7) as (ops_url, _, clients):
        holder, *waiters = clients
        cli(ops_url, "stock", "100", "--per-session", "0.5")
        assert (await holder.get("/checkout")).status_code == 200
        positions = (1, 150, 185, 200, 250, 1000)
        joined = 0
        for client, position in zip(waiters, positions, strict=True):
            await asyncio.gather(*(engine.visit("default", new_visitor_id(), new=True)
                                   for _ in range(position - 1 - joined)))
            assert "wr-card" in (await client.get("/checkout")).text
            joined = position

        async def told() -> list[object]:
            return [(await c.get("/_wr/status")).json().get("chance") for c in waiters]

        async def all_told() -> bool:
            return all(await told())
        await eventually(all_told, "every waiter told a chance")
        chances = await told()
        assert [(await c.get("/_wr/status")).json()["position"] for c in waiters] == list(
            positions)
        assert [c["level"] for c in chances] == [  # type: ignore[index]
            "likely", "likely", "uncertain", "uncertain", "unlikely", "unlikely"]
        assert chances[0] == {"level": "likely", "reach": 199, "stock": 100,
                              "sales_per_session": 0.5}
        # Ops read the figure the waiters are judged on (it read the default 1.0).
        assert cli(ops_url, "show")["sales"]["sales_per_session"] == 0.5
        # The page sends back what it showed; polling again changes nothing.
        near = waiters[3]
        for _ in range(5):
            again = (await near.get("/_wr/status?chance=uncertain")).json()
            assert again["chance"]["level"] == "uncertain"
        # Place 185, just past the likely edge (179): one shown "likely" keeps it until
        # 189, the page sending back what it showed; anything else counts as nothing.
        held = (await waiters[2].get("/_wr/status?chance=likely")).json()["chance"]
        assert held["level"] == "likely"
        hostile = await waiters[2].get("/_wr/status?chance=%3Cscript%3Eunlikely")
        assert hostile.json()["chance"]["level"] == "uncertain"
        assert "script" not in hostile.text
        page = (await waiters[4].get("/checkout")).text
        assert 'data-level="unlikely"' in page and "most likely run out" in page
        cli(ops_url, "stock", "off")  # no stock counted: no chance told

        async def untold() -> bool:
            return "chance" not in (await near.get("/_wr/status")).json()
        await eventually(untold, "no chance once stock is not counted")


async def test_passthrough_counts_sessions_but_lets_everyone_in(
    room_env: dict[str, str],
) -> None:
    async with ops_and_shop(room_env, visitors=3) as (ops_url, _, shoppers):
        assert cli(ops_url, "method", "passthrough")["config"]["method"] == "passthrough"

        async def all_in() -> bool:  # the serve process reads the method within a second
            return all([(await s.get("/checkout")).text.startswith("origin:")
                        for s in shoppers])
        await eventually(all_in, "everyone let in, whatever the capacity (1)")
        assert cli(ops_url, "show")["counts"]["active"] == 3  # counted all the same


async def test_reject_keeps_no_line(room_env: dict[str, str]) -> None:
    async with ops_and_shop(room_env, visitors=3) as (ops_url, _, (ann, bob, cy)):
        cli(ops_url, "method", "reject")
        await asyncio.sleep(1.1)  # every process has read it
        assert (await ann.get("/checkout")).text.startswith("origin:")  # a free slot: in
        turned = await bob.get("/checkout?size=9")
        # Nobody is waiting: the page says there is no line, not that it is full; when
        # to come back; and offers the other languages of this very page.
        assert "Every place is taken" in turned.text and "wr-card" not in turned.text
        assert "keeps no line" in turned.text and "a minute or two" in turned.text
        assert "The line is full" not in turned.text and "As many people" not in turned.text
        assert 'href="/checkout?size=9&amp;lang=fr"' in turned.text
        assert (await bob.get("/_wr/status")).json()["state"] == "full"
        assert cli(ops_url, "show")["counts"]["waiting"] == 0  # nobody was given a place
        assert (await ann.get("/done")).status_code == 200  # Ann's order ends her session
        assert (await cy.get("/checkout")).text.startswith("origin:")  # the slot is free
        async with Browser(base_url=ops_url, headers=AUTH) as ops:
            bad = await ops.post("/_wr/admin/room", json={"method": "lottery"})
        assert bad.status_code == 400 and "method" in bad.json()["error"]


async def test_those_turned_away_or_unlikely_can_leave_details_kept_apart_from_orders(
    room_env: dict[str, str], engine: Engine,
) -> None:
    async with ops_and_shop(room_env, visitors=3) as (ops_url, _, (holder, late, far)):
        cli(ops_url, "stock", "1")
        assert (await holder.get("/checkout")).text.startswith("origin:")
        await asyncio.gather(*(engine.visit("default", new_visitor_id(), new=True)
                               for _ in range(20)))
        queue = (await far.get("/checkout")).text  # place 21 for 1 unit: unlikely

        async def offered() -> bool:
            page = (await far.get("/checkout")).text
            return 'id="wr-interest">' in page  # shown: no hidden attribute
        await eventually(offered, "the unlikely offered to leave their details")
        assert 'id="wr-interest" hidden>' in queue or 'id="wr-interest">' in queue
        cli(ops_url, "stock", "0")
        await asyncio.sleep(1.1)  # every process knows it is sold out
        sold_out = await late.get("/checkout")
        assert "/_wr/interest?room=default" in sold_out.text, sold_out.text
        form = await late.get("/_wr/interest")
        assert form.status_code == 200 and 'action="/_wr/interest?room=default"' in form.text
        assert "does not reserve or buy anything" in form.text
        # Contact details only: nothing is ordered here (the order form asks a product).
        assert 'name="email"' in form.text and 'name="product"' not in form.text
        assert "contacted if more comes in" in form.text and "my order" not in form.text
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        sent = await late.post("/_wr/interest", data={
            "csrf": csrf, "name": "Ann Example", "email": "ann@example.com", "consent": "yes"})
        assert sent.status_code == 200 and "WI-" in sent.text
        assert "contact people in the order they left their details" in sent.text
        assert cli(ops_url, "show")["counts"]["waiting"] == 21  # no place was taken
        assert await engine.captures.count("default", interest=True) == 1
        assert await engine.captures.count("default") == 0  # never an order, never replayed
        exported = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "waitingroom.cli", "captures", "export", "--interest",
             "--redis-url", room_env["WAITINGROOM_REDIS_URL"], "--format", "jsonl"],
            capture_output=True, text=True, timeout=30, check=True)
        record = json.loads(exported.stdout)
        assert record["reference"].startswith("WI-")
        assert record["fields"]["email"] == "ann@example.com"
        assert "product" not in record["fields"]  # the export's columns are the form's



async def test_in_a_random_draw_a_waiter_is_told_so_and_shown_no_number(
    room_env: dict[str, str],
) -> None:
    async with ops_and_shop(room_env, visitors=3) as (ops_url, _, (ann, bob, cy)):
        cli(ops_url, "method", "random")
        await asyncio.sleep(1.1)  # every process has read it
        assert (await ann.get("/checkout")).text.startswith("origin:")
        page = (await bob.get("/checkout")).text
        assert 'id="wr-position">In the draw<' in page and "drawn at random" in page
        await cy.get("/checkout")
        status = (await cy.get("/_wr/status")).json()
        assert status["state"] == "draw" and status["position"] is None
        assert (await ann.get("/done")).status_code == 200  # a place frees: one is drawn

        async def one_drawn() -> bool:
            states = [(await c.get("/_wr/status")).json()["state"] for c in (bob, cy)]
            return sorted(states) == ["admitted", "draw"]
        await eventually(one_drawn, "one of the two waiting drawn")

