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
    rng = random.Random(plan.seed)
    hazard = -math.log(1 - plan.abandon_per_minute) / 60
    outcome = Outcome()
    arrived: list[float] = []
    let_in: set[int] = set()
    line: deque[int] = deque()  # shoppers in line, first come first
    # Shoppers by when they give up, then by when the room lets their place lapse (a
    # grace later): lapsed ones still in line no longer count as waiting, as in the room.
    giving_up: list[tuple[float, int]] = []
    gone: set[int] = set()
    lapsing: list[tuple[float, int]] = []
    lapsed: set[int] = set()
    sessions: list[float] = []  # when each session ends, on the origin's clock (a heap)
    work = 0.0  # the origin's clock: it runs slower than time past the knee
    memory, judged, next_judgement = Memory(), [0.0, 0.0], float(plan.adaptive_interval_seconds)
    capacity, rate = plan.capacity, plan.rate_per_minute  # as the timeline changes them
    bucket = burst = max(1.0, math.ceil(rate / 60))
    # A slot found free is taken at the head's next poll: half a second on average (the
    # queue page asks every second once its turn is due).
    claim_delay = poll_interval(1, plan.grace_seconds, 1.0) / 2
    tick, t, next_sample = plan.tick_seconds, 0.0, 0.0
    stock = plan.stock  # units left, as the room counts them (sold as sessions end)
    while t <= plan.max_hours * 3600:
        for step in plan.steps_due(t - tick if t else -1.0, t):
            capacity = step.capacity or capacity
            if step.rate_per_minute is not None:
                rate = step.rate_per_minute
                burst = max(1.0, math.ceil(rate / 60))
            stock = stock if step.stock is None else step.stock
        while sessions and sessions[0] <= work:
            heapq.heappop(sessions)
            outcome.completed += 1
            if stock is not None:
                stock = max(0, stock - units_bought(rng, plan.sales_per_session))
                if stock == 0 and outcome.sold_out_seconds is None:
                    outcome.sold_out_seconds = t
                    outcome.waiting_at_sell_out = len(line) - len(lapsed)
        for _ in range(round(plan.arrivals.expected(t + tick)) - outcome.arrived):
            outcome.arrived += 1
            if stock == 0:  # the sold-out page: no place
                outcome.turned_away += 1
                arrived.append(t)
                continue
            if stock is not None and chance_of(
                    len(line) - len(lapsed) + 1, stock=stock, active=len(sessions),
                    sales_per_session=plan.sales_per_session).level == "unlikely":
                outcome.told_unlikely += 1  # as the room would tell them on joining
            patience = rng.expovariate(hazard) if hazard > 0 else math.inf
            line.append(len(arrived))
            if patience < math.inf:
                heapq.heappush(giving_up, (t + patience, len(arrived)))
            arrived.append(t)
        while giving_up and giving_up[0][0] <= t:
            when, shopper = heapq.heappop(giving_up)
            if shopper not in let_in:
                outcome.abandoned += 1
                gone.add(shopper)
                heapq.heappush(lapsing, (when + plan.grace_seconds, shopper))
        while lapsing and lapsing[0][0] <= t:
            shopper = heapq.heappop(lapsing)[1]
            if shopper in gone:
                lapsed.add(shopper)
        if rate:
            bucket = min(burst, bucket + tick * rate / 60)
        while line and len(sessions) < capacity and stock != 0 and (
                not rate or bucket >= 1):
            shopper = line.popleft()
            if shopper in gone:  # the slot goes to the next who is here
                gone.discard(shopper)
                lapsed.discard(shopper)
                continue
            let_in.add(shopper)
            bucket -= 1
            came = t + claim_delay
            outcome.waits.append(came - arrived[shopper])
            outcome.drain_seconds = came
            heapq.heappush(sessions, work + claim_delay + plan.session_seconds)
        outcome.max_active = max(outcome.max_active, len(sessions))
        speed = plan.origin.speed(len(sessions)) if plan.origin else 1.0
        work += tick * speed
        if plan.origin and sessions:  # each session asks again as soon as answered
            answer_ms = plan.origin.answer_ms / speed
            answers = len(sessions) * tick * 1000 / answer_ms
            outcome.answers.append((answer_ms, answers))
            judged = [judged[0] + answers, judged[1] + answers * answer_ms]
        if plan.adaptive and t >= next_judgement:
            figures = IntervalFigures(round(judged[0]), round(judged[1]), 0)
            capacity = decide(capacity, figures, memory, len(sessions), *plan.adaptive).capacity
            judged, next_judgement = [0.0, 0.0], t + plan.adaptive_interval_seconds
        if t >= next_sample:
            outcome.samples.append(Sample(t, outcome.arrived, len(line) - len(lapsed),
                                          len(sessions), len(outcome.waits),
                                          outcome.abandoned, capacity))
            next_sample += _SAMPLE_EVERY_SECONDS
        t += tick
        if t > plan.arrivals.end_seconds and (not line or stock == 0) and not (
                plan.steps_due(t - tick, math.inf)):  # (none still to apply)
            break  # drained, or sold out with no restock to come
    if line:
        outcome.drain_seconds = None
    return outcome


