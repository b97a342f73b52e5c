"""Property: whatever a crowd of honest shoppers and attackers do at once, against an
origin that misbehaves on command, nobody gets another's answer, nothing reaches the
order flow without a session, no cut-off request arrives whole, and no origin
connection outlives its visitor (tests/adversarial/visitors.py: ``check``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.adversarial.rig import ACTS, Rig, running_rig
from tests.adversarial.visitors import HOWS, SPELLINGS, Visit, check, run_batch
from waitingroom.settings import Settings

EXAMPLES = int(os.environ.get("WR_ADVERSARIAL_EXAMPLES", "250"))


@pytest.fixture
def rig(make_settings: Callable[..., Settings]) -> Iterator[Rig]:
    with running_rig(make_settings(capacity=4, gated_paths=("/checkout*",),
                                   open_paths=("/static/*",), origin_timeout_seconds=3),
                     admitted=4) as rig:
        yield rig


def visits() -> st.SearchStrategy[Visit]:
    return st.builds(
        Visit, token=st.uuids().map(lambda u: "tok-" + u.hex[:16]),
        act=st.sampled_from(ACTS), how=st.sampled_from(HOWS), gated=st.booleans(),
        admitted=st.booleans(), spelling=st.sampled_from(SPELLINGS),
        pad=st.integers(min_value=1, max_value=400))


@pytest.mark.slow
@pytest.mark.timeout(900)  # hundreds of crowds: more than the suite's 120 s per test
def test_no_crowd_gets_round_the_wall(rig: Rig) -> None:
    # No shrinking: a crowd of at most eight is read as it is, and shrinking a
    # concurrent failure can take minutes.
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(visits(), min_size=1, max_size=8))
    def crowd(plans: list[Visit]) -> None:
        seen_from = len(rig.origin.seen)
        received = asyncio.run(run_batch(rig, plans))
        check(rig, plans, received, seen_from)

    crowd()
