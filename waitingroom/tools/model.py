"""The room's admission rules in plain Python, for planning a launch in seconds.

``waitingroom simulate`` runs the real Lua scripts on a private Redis (``--exact``);
for a launch of tens of thousands over hours that takes minutes. This model applies
the same rules to the same simulated shoppers without Redis:

- arrivals follow the curve; each shopper's patience is exponential (the abandon
  rate), and one who has given up is skipped when the line reaches them (the room
  offers a slot only to a visitor it heard from lately);
- a free slot goes to the longest-waiting shopper still here, within the capacity
  and the rate's token bucket (``rate / 60`` a second, bursts of ``rate / 60``);
- the shopper learns at their next poll at the head of the line (as the queue page
  polls), then holds the session for the session time;
- with an origin model, a session's time stretches as the origin slows past its
  knee (its work runs on the origin's clock), and an adaptive room moves its cap
  each interval by the room's own rule (:func:`~waitingroom.room.adaptive.decide`),
  judging the answers those sessions got.

``tests/tools/test_simulate.py`` checks it against the Lua model on the same plans.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque

from waitingroom.engine import IntervalFigures
from waitingroom.room.adaptive import Memory, decide
from waitingroom.room.chance import chance_of
from waitingroom.status import poll_interval
from waitingroom.tools.plan import Outcome, Plan, Sample, units_bought

_SAMPLE_EVERY_SECONDS = 1.0


def model_launch(plan: Plan) -> Outcome:
    """Run ``plan`` through the admission rules in simulated time, without Redis."""
    launch = _Launch(plan)
    while launch.t <= plan.max_hours * 3600:
        launch.step()
        if launch.over():
            break
    if launch.line:
        launch.outcome.drain_seconds = None
    return launch.outcome


class _Launch:
    """One launch in the model: the line, the sessions and the origin, tick by tick."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.hazard = plan.give_up_hazard
        self.outcome = Outcome()
        self.arrived: list[float] = []
        self.let_in: set[int] = set()
        self.line: deque[int] = deque()  # shoppers in line, first come first
        # Shoppers by when they give up, then by when the room lets their place lapse (a
        # grace later): lapsed ones still in line no longer count as waiting, as in the
        # room.
        self.giving_up: list[tuple[float, int]] = []
        self.gone: set[int] = set()
        self.lapsing: list[tuple[float, int]] = []
        self.lapsed: set[int] = set()
        self.sessions: list[float] = []  # when each session ends, on the origin's clock
        self.work = 0.0  # the origin's clock: it runs slower than time past the knee
        self.memory, self.judged = Memory(), [0.0, 0.0]
        self.next_judgement = float(plan.adaptive_interval_seconds)
        self.capacity, self.rate = plan.capacity, plan.rate_per_minute  # as steps change them
        self.bucket = self.burst = max(1.0, math.ceil(self.rate / 60))
        # A slot found free is taken at the head's next poll: half a second on average
        # (the queue page asks every second once its turn is due).
        self.claim_delay = poll_interval(1, plan.grace_seconds, 1.0) / 2
        self.tick, self.t, self.next_sample = plan.tick_seconds, 0.0, 0.0
        self.stock = plan.stock  # units left, as the room counts them (sold as sessions end)

    @property
    def waiting(self) -> int:
        """Shoppers in line whose places have not lapsed."""
        return len(self.line) - len(self.lapsed)

    def step(self) -> None:
        """One tick: planned changes, ended sessions, arrivals, walk-aways, admissions,
        the origin's work and the adaptive cap, a sample."""
        self._apply_steps()
        self._end_sessions()
        self._arrive()
        self._give_up()
        self._admit()
        self._serve()
        if self.t >= self.next_sample:
            self.outcome.samples.append(Sample(
                self.t, self.outcome.arrived, self.waiting, len(self.sessions),
                len(self.outcome.waits), self.outcome.abandoned, self.capacity))
            self.next_sample += _SAMPLE_EVERY_SECONDS
        self.t += self.tick

    def over(self) -> bool:
        """Drained, or sold out with no restock to come, once arrivals have ended."""
        return self.t > self.plan.arrivals.end_seconds and (
            not self.line or self.stock == 0) and not self.plan.steps_due(
            self.t - self.tick, math.inf)  # (none still to apply)

    def _apply_steps(self) -> None:
        for step in self.plan.steps_due(self.t - self.tick if self.t else -1.0, self.t):
            self.capacity = step.capacity or self.capacity
            if step.rate_per_minute is not None:
                self.rate = step.rate_per_minute
                self.burst = max(1.0, math.ceil(self.rate / 60))
            self.stock = self.stock if step.stock is None else step.stock

    def _end_sessions(self) -> None:
        while self.sessions and self.sessions[0] <= self.work:
            heapq.heappop(self.sessions)
            self.outcome.completed += 1
            if self.stock is not None:
                self.stock = max(0, self.stock - units_bought(self.rng,
                                                              self.plan.sales_per_session))
                if self.stock == 0 and self.outcome.sold_out_seconds is None:
                    self.outcome.sold_out_seconds = self.t
                    self.outcome.waiting_at_sell_out = self.waiting

    def _arrive(self) -> None:
        outcome, t = self.outcome, self.t
        for _ in range(round(self.plan.arrivals.expected(t + self.tick)) - outcome.arrived):
            outcome.arrived += 1
            if self.stock == 0:  # the sold-out page: no place
                outcome.turned_away += 1
                self.arrived.append(t)
                continue
            if self.stock is not None and chance_of(
                    self.waiting + 1, stock=self.stock, active=len(self.sessions),
                    sales_per_session=self.plan.sales_per_session).level == "unlikely":
                outcome.told_unlikely += 1  # as the room would tell them on joining
            patience = self.rng.expovariate(self.hazard) if self.hazard > 0 else math.inf
            self.line.append(len(self.arrived))
            if patience < math.inf:
                heapq.heappush(self.giving_up, (t + patience, len(self.arrived)))
            self.arrived.append(t)

    def _give_up(self) -> None:
        while self.giving_up and self.giving_up[0][0] <= self.t:
            when, shopper = heapq.heappop(self.giving_up)
            if shopper not in self.let_in:
                self.outcome.abandoned += 1
                self.gone.add(shopper)
                heapq.heappush(self.lapsing, (when + self.plan.grace_seconds, shopper))
        while self.lapsing and self.lapsing[0][0] <= self.t:
            shopper = heapq.heappop(self.lapsing)[1]
            if shopper in self.gone:
                self.lapsed.add(shopper)

    def _admit(self) -> None:
        if self.rate:
            self.bucket = min(self.burst, self.bucket + self.tick * self.rate / 60)
        while self.line and len(self.sessions) < self.capacity and self.stock != 0 and (
                not self.rate or self.bucket >= 1):
            shopper = self.line.popleft()
            if shopper in self.gone:  # the slot goes to the next who is here
                self.gone.discard(shopper)
                self.lapsed.discard(shopper)
                continue
            self.let_in.add(shopper)
            self.bucket -= 1
            came = self.t + self.claim_delay
            self.outcome.waits.append(came - self.arrived[shopper])
            self.outcome.drain_seconds = came
            heapq.heappush(self.sessions,
                           self.work + self.claim_delay + self.plan.session_seconds)
        self.outcome.max_active = max(self.outcome.max_active, len(self.sessions))

    def _serve(self) -> None:
        """The origin works (slower past its knee); an adaptive room judges its answers."""
        plan = self.plan
        speed = plan.origin.speed(len(self.sessions)) if plan.origin else 1.0
        self.work += self.tick * speed
        if plan.origin and self.sessions:  # each session asks again as soon as answered
            answer_ms = plan.origin.answer_ms / speed
            answers = len(self.sessions) * self.tick * 1000 / answer_ms
            self.outcome.answers.append((answer_ms, answers))
            self.judged = [self.judged[0] + answers, self.judged[1] + answers * answer_ms]
        if plan.adaptive and self.t >= self.next_judgement:
            figures = IntervalFigures(round(self.judged[0]), round(self.judged[1]), 0)
            self.capacity = decide(self.capacity, figures, self.memory, len(self.sessions),
                                   *plan.adaptive).capacity
            self.judged = [0.0, 0.0]
            self.next_judgement = self.t + plan.adaptive_interval_seconds
