"""What a visitor page costs to build, as ratios to baselines timed in the same run:
the queue page (built once per room, page and language; each visitor's values filled
in) against the poll's JSON answer (``Status.to_json``, the cheapest answer there is)
and against rendering the whole template for every visitor (what the cache saves); and
the same for the empty capture form, which every shopper gets while the order system
is down.
Goals: a queue page costs at most 10x the poll's JSON (it is 100x the bytes), and the
cache makes it at least 20x cheaper than rendering the template each time.

Usage: python loadtests/bench_pages.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from waitingroom.capture.form_pages import capture_page
from waitingroom.fields import parse_fields
from waitingroom.settings import Settings
from waitingroom.status import Status
from waitingroom.web.renderer import Pages, RoomLook

PAGE_PER_POLL = 10.0
CACHE_SAVES = 20.0
VISITORS = [Status("launch", "queued", position=i, eta_seconds=None if i % 3 else 60 * i,
                   message="Doors open at nine", poll_after_seconds=2 + i // 100)
            for i in range(1, 1001)]


def _per_call(build: Callable[[Status], object], rounds: int) -> float:
    """The best time per visitor over ``rounds`` runs through all of them (seconds)."""
    def run() -> None:
        for status in VISITORS:
            build(status)
    run()
    return min(timeit.repeat(run, number=3, repeat=rounds)) / (3 * len(VISITORS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pages, look = Pages(), RoomLook(notify=True)
    lang, here = "fr", "/checkout?step=1"
    poll = _per_call(lambda s: s.to_json(), args.rounds)

    def built_each_time(build: Callable[[Status], object]) -> Callable[[Status], object]:
        """``build`` with the built frames forgotten first: the pages' own code, as a
        new room or language pays for it (so this baseline cannot drift from it)."""
        def uncached(status: Status) -> object:
            pages._frame.cache_clear()  # what the cache saves is what is measured
            return build(status)
        return uncached

    def page(s: Status) -> object:
        return pages.queue(s, look=look, lang=lang, here=here)
    cached = _per_call(page, args.rounds)
    uncached = _per_call(built_each_time(page), args.rounds)
    print(f"queue page (cached frame): {cached * 1e6:.1f} us per visitor")
    print(f"poll JSON (baseline):      {poll * 1e6:.1f} us  -> page/poll {cached / poll:.2f}x")
    print(f"whole template each time:  {uncached * 1e6:.1f} us  -> "
          f"the cache makes it {uncached / cached:.0f}x cheaper")
    fields = parse_fields(Settings().capture_fields)
    def form_page(s: Status) -> object:
        return capture_page(pages, fields, csrf=f"token-{s.position}", status=s, lang=lang,
                            here=here)
    form = _per_call(form_page, args.rounds)
    whole_form = _per_call(built_each_time(form_page), args.rounds)
    print(f"empty capture form (cached): {form * 1e6:.1f} us; built each time: "
          f"{whole_form * 1e6:.1f} us")
    met = cached / poll <= PAGE_PER_POLL and uncached / cached >= CACHE_SAVES
    print(f"goals: page <= {PAGE_PER_POLL:g}x the poll's JSON, cache >= {CACHE_SAVES:g}x "
          f"cheaper: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
