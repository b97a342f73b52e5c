"""The queue page's estimate against the waits it foretold (``loadtests/eta.py``): a
small shop's launch, with tab-closers and walk-aways, on the room's own scripts."""

from __future__ import annotations

from loadtests.eta import GOALS, LAUNCHES, run_launch


async def test_the_estimate_counts_the_walk_aways_ahead() -> None:
    """Place over rate told the small shop's line it would wait about half as long
    again as it did (the tab-closers ahead of it never come); the room's estimate,
    which counts on their leaving, is within the goal and closer at the tail too."""
    scores, admitted = await run_launch(LAUNCHES["small shop"], seed=1)
    plain, room = scores.values()
    assert admitted > 100
    assert room.shown_share() > 0.95  # a minute into admissions, every page has one
    assert room.percentile(0.5) <= GOALS[0.5] < plain.percentile(0.5)
    assert room.percentile(0.9) < plain.percentile(0.9)
    assert plain.percentile(0.5, signed=True) > 0.3  # the old estimate ran high
