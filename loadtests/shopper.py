"""The launch-day shopper, a Locust persona (used by the scenario files beside it).

Each task run is one new shopper (fresh cookies): look at the catalogue, ask for the
checkout (twice, as a browser on the first visit's page does: the second time with the
room's cookie, which takes the place), and if sent to the queue, poll ``/_wr/status``
at the interval the room advises until admitted; then check out and place the order,
which ends the session. Some give up while waiting; some leave after being let in
without ordering (their session then ends by the idle timeout). Every answer is
checked for what a shopper must see, so a wrong page is a failure, not just a slow one.

Options (flags or environment): ``--give-up-share`` (WR_LOAD_GIVE_UP, 0.1),
``--leave-share`` (WR_LOAD_LEAVE, 0.1), ``--think-seconds`` (WR_LOAD_THINK, 3),
``--outcomes-file`` (WR_LOAD_OUTCOMES): where to write, as JSON, how the visits ended
(straight in, let in after waiting, gave up, left without ordering, ordered).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from typing import Any

import shapes
from locust import FastHttpUser, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

JSON = {"Accept": "application/json"}
GIVE_UP_AFTER_SECONDS = (5.0, 60.0)
OUTCOMES: Counter[str] = Counter()
"""How visits ended: arrived, straight in, let in after waiting, gave up, left, ordered."""


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--give-up-share", type=float, env_var="WR_LOAD_GIVE_UP", default=0.1,
                        help="share of queued shoppers who give up before their turn")
    parser.add_argument("--leave-share", type=float, env_var="WR_LOAD_LEAVE", default=0.1,
                        help="share of admitted shoppers who leave without ordering")
    parser.add_argument("--think-seconds", type=float, env_var="WR_LOAD_THINK", default=3.0,
                        help="mean time an admitted shopper spends on the checkout page")
    parser.add_argument("--outcomes-file", env_var="WR_LOAD_OUTCOMES", default="",
                        help="write how the visits ended here, as JSON, at the end")


REPORTERS: set[str] = set()
"""On a master: the workers whose shoppers' outcomes reached it."""


@events.report_to_master.add_listener
def _send_outcomes(data: dict[str, Any], **_: Any) -> None:
    """On a worker: the outcomes since the last report go to the master with it."""
    data["wr_outcomes"] = dict(OUTCOMES)
    OUTCOMES.clear()


@events.worker_report.add_listener
def _add_outcomes(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """On a master: a worker's outcomes added to the run's."""
    if data.get("wr_outcomes"):
        OUTCOMES.update(data["wr_outcomes"])
        REPORTERS.add(client_id)


@events.quitting.add_listener
def _write_outcomes(environment: Any, **_: Any) -> None:
    """The run's outcomes, by the master (with how many workers reported) or by a
    process running alone; never by a worker."""
    path = environment.parsed_options.outcomes_file
    if path and not isinstance(environment.runner, WorkerRunner):
        outcomes: dict[str, Any] = dict(OUTCOMES)
        if isinstance(environment.runner, MasterRunner):
            outcomes["workers reporting"] = len(REPORTERS)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(outcomes, f)


class Shopper(FastHttpUser):
    """One shopper after another, each arriving, waiting their turn and ordering."""

    def wait_time(self) -> float:
        return random.uniform(0.5, 2.0)  # between one shopper and the next

    @task
    def launch_day_visit(self) -> None:
        """One shopper's whole visit."""
        runner = self.environment.runner
        if shapes.DRAINING or (runner is not None and runner.user_count > shapes.TARGET):
            raise StopUser  # the crowd thins (or the run is over): no new shopper here
        options = self.environment.parsed_options
        self.client.cookiejar.clear()  # a new shopper, not a returning one
        OUTCOMES["arrived"] += 1
        self._expect(self.client.get("/", name="catalogue (open)", catch_response=True),
                     "waitPhone")
        with self.client.get("/checkout", name="checkout (first visit)",
                             catch_response=True) as answer:
            if answer.headers.get("x-waitingroom-state") != "arriving":
                answer.failure(f"not the first visit's page: {answer.status_code}")
                return
        # The page's script asks again at once, with the cookie it came with.
        with self.client.get("/checkout", name="checkout (arrive)",
                             catch_response=True) as answer:
            queued = 'id="wr-card"' in answer.text  # the queue page
            if not queued and "Checkout" not in answer.text:
                answer.failure(f"neither the queue page nor the checkout: {answer.status_code}")
                return
        if queued:
            if not self._wait_turn(options.give_up_share):
                OUTCOMES["gave up"] += 1
                return
            OUTCOMES["let in after waiting"] += 1
            self._expect(self.client.get("/checkout", name="checkout (admitted)",
                                         catch_response=True), "Checkout")
        else:
            OUTCOMES["straight in"] += 1
        # The checkout page carries the room's leave.js: it says the page is here.
        self.client.post("/_wr/here", name="beacon (here)")
        time.sleep(random.expovariate(1 / max(0.1, options.think_seconds)))
        if random.random() < options.leave_share:
            OUTCOMES["left without ordering"] += 1
            return  # the session ends by the idle timeout (no tab is closed here)
        self._expect(self.client.post("/checkout", name="place order", catch_response=True),
                     "Order placed")
        OUTCOMES["ordered"] += 1

    def _wait_turn(self, give_up_share: float) -> bool:
        """Poll as the queue page does; True once admitted, False if the shopper gave up."""
        gives_up_at = (time.monotonic() + random.uniform(*GIVE_UP_AFTER_SECONDS)
                       if random.random() < give_up_share else float("inf"))
        while time.monotonic() < gives_up_at:
            with self.client.get("/_wr/status", headers=JSON, name="/_wr/status (poll)",
                                 catch_response=True) as answer:
                try:
                    status = answer.json()
                except ValueError:
                    answer.failure(f"status is not JSON: {answer.status_code}")
                    return False
                if status.get("state") == "admitted":
                    return True
                if status.get("state") not in ("queued", "paused", "prequeue"):
                    answer.failure(f"unexpected state {status.get('state')!r}")
                    return False
            time.sleep(status["poll_after_seconds"])  # gevent-patched: yields
        return False

    @staticmethod
    def _expect(answer: ResponseContextManager, text: str) -> None:
        with answer as response:
            if text not in (response.text or ""):
                response.failure(f"expected {text!r}, got {response.status_code}")
