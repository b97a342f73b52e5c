"""Pure functions: admission-rate ETA, path rules, poll interval."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waitingroom.engine import server_supported
from waitingroom.errors import RedisServerError
from waitingroom.room.eta import AdmissionRate
from waitingroom.room.told import read_told, told_value
from waitingroom.status import State, Status, poll_interval
from waitingroom.tools.redis_server import find_redis_server, server_version
from waitingroom.web.i18n import Languages
from waitingroom.web.paths import Router
from waitingroom.web.renderer import eta_range


def test_eta_comes_from_the_measured_rate() -> None:
    rate = AdmissionRate(window_seconds=60)
    assert rate.eta_seconds(10) is None  # nothing measured yet
    rate.observe(1_000_000, 100)
    rate.observe(1_000_500, 103)  # under a second later: not a new sample
    assert rate.per_second() is None
    rate.observe(1_010_000, 120)  # 20 admissions in 10 s: a rate, but no ETA yet
    assert rate.per_second() == 2.0 and rate.eta_seconds(9) is None
    rate.observe(1_040_000, 180)  # 80 in 40 s: measured long enough to promise by
    assert rate.per_second() == 2.0
    assert rate.eta_seconds(9) == 5


def test_the_opening_burst_gives_no_eta() -> None:
    """The room fills its capacity in a second when it opens, then nobody leaves: that
    burst is no rate to tell the line "less than a minute" by."""
    rate = AdmissionRate()
    rate.observe(0, 0)
    rate.observe(1_000, 3)
    rate.observe(2_000, 3)
    assert rate.eta_seconds(6) is None


def test_eta_window_slides_and_resets() -> None:
    rate = AdmissionRate(window_seconds=10)
    rate.observe(0, 0)
    rate.observe(5_000, 50)
    rate.observe(20_000, 60)  # the first two samples fall out of the window
    assert rate.per_second() is None
    rate.observe(21_000, 70)
    assert rate.per_second() == 10.0
    rate.observe(22_000, 0)  # the room was reset
    assert rate.per_second() is None


def test_a_slow_shop_measures_its_rate_over_more_than_a_minute() -> None:
    """A minute holding fewer than ten admissions is too few to go by: the span reaches
    back until it holds ten; a busy room's is the last minute."""
    slow = AdmissionRate()
    for at_s, admitted in ((0, 0), (60, 8), (120, 12)):
        slow.observe(at_s * 1000, admitted)
    assert slow.per_second() == 12 / 120
    busy = AdmissionRate()
    for at_s, admitted in ((0, 0), (60, 100), (120, 400)):
        busy.observe(at_s * 1000, admitted)
    assert busy.per_second() == 300 / 60


def test_no_admissions_means_no_eta_rather_than_infinity() -> None:
    rate = AdmissionRate()
    rate.observe(0, 5)
    rate.observe(2_000, 5)
    assert rate.eta_seconds(1) is None


@pytest.mark.parametrize(("gated", "open_", "path", "expected"), [
    ((), (), "/anything", "main"),
    ((), ("/login", "/static/*"), "/static/app.css", None),
    ((), ("/login", "/static/*"), "/login", None),
    ((), ("/login",), "/login/extra", "main"),
    (("/checkout*",), (), "/checkout/pay", "main"),
    (("/checkout*",), (), "/", None),
    (("/checkout*",), ("/checkout/help",), "/checkout/help", None),
])
def test_router_for_the_configured_room(gated: tuple[str, ...], open_: tuple[str, ...],
                                         path: str, expected: str | None) -> None:
    assert Router("main", gated, open_).route(path) == expected


def test_router_puts_run_time_rooms_first_oldest_first_and_open_paths_above_all() -> None:
    router = Router("main", ("/checkout*",), ("/consoles/help",)).with_rooms(
        [("consoles", ("/consoles/*",)), ("all-games", ("/consoles/games/*", "/games/*"))])
    assert router.route("/consoles/ps6") == "consoles"
    assert router.route("/consoles/games/x") == "consoles"  # the older room wins
    assert router.route("/games/x") == "all-games"
    assert router.route("/consoles/help") is None
    assert router.route("/checkout/pay") == "main"
    assert router.route("/") is None
    assert Router("main").with_rooms([("a", ("/a",))]).route("/b") == "main"


def test_poll_interval_grows_with_distance_but_stays_inside_the_grace() -> None:
    assert poll_interval(1, 60) == 2
    assert poll_interval(500, 60) == 7
    assert poll_interval(100_000, 60) == 20
    assert poll_interval(100_000, 6) == 2


def test_wait_times_histogram() -> None:
    from waitingroom.room.eta import WAIT_BUCKETS
    from waitingroom.web.histogram import Histogram

    waits = Histogram(WAIT_BUCKETS)
    for seconds in (1, 20, 20, 9000):
        waits.observe(seconds)
    buckets = dict(waits.cumulative())
    assert (buckets["5.0"], buckets["30.0"], buckets["7200.0"], buckets["+Inf"]) == (1, 3, 3, 4)
    assert waits.total == 9041


@given(room=st.text(max_size=40), state=st.sampled_from(get_args(State)),
       position=st.none() | st.integers(0, 10**9), eta=st.none() | st.integers(0, 10**9),
       message=st.none() | st.text(max_size=500), poll=st.integers(1, 100))
def test_status_json_is_exactly_json_dumps_of_its_fields(
    room: str, state: State, position: int | None, eta: int | None, message: str | None,
    poll: int,
) -> None:
    status = Status(room, state, position, eta, message, poll)
    assert json.loads(status.to_json()) == status.as_dict()
    assert status.to_json() == json.dumps(status.as_dict(), separators=(",", ":")).encode()


@pytest.mark.parametrize(("chosen", "header", "expected"), [
    (None, "", "en"),
    (None, "fr-FR,fr;q=0.9,en;q=0.8", "fr"),
    (None, "en;q=0.5, de;q=0.9", "de"),
    (None, "ja, zh;q=0.9", "en"),
    (None, "de;q=abc, fr;q=0.1", "fr"),
    ("de", "fr", "de"),
    ("xx", "fr", "fr"),
    (None, "de-CH, fr;q=0.5", "de"),
])
def test_the_language_is_the_choice_then_accept_language_then_english(
    chosen: str | None, header: str, expected: str,
) -> None:
    assert Languages().pick(chosen, header) == expected


def test_the_openapi_document_lists_every_state_and_reserved_endpoint() -> None:
    document = json.loads((Path(__file__).resolve().parent.parent / "docs/openapi.json")
                          .read_text())
    states = document["components"]["schemas"]["Status"]["properties"]["state"]["enum"]
    assert set(states) == set(get_args(State))
    for path in ("/_wr/status", "/_wr/events", "/_wr/capture", "/_wr/pow",
                 "/_wr/resume-link", "/_wr/resume", "/_wr/qr.svg", "/_wr/notify",
                 "/_wr/claim", "/_wr/leave", "/_wr/here"):
        assert path in document["paths"], path


def test_the_eta_is_a_range_that_widens_with_distance() -> None:
    assert eta_range(2) == (1, 3)
    assert eta_range(10) == (8, 12)
    assert eta_range(60) == (48, 72)


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize(("text", "background"), [
    ("#1a1a1a", "#f4f5f7"),  # body text
    ("#4a4a4a", "#ffffff"),  # labels and notes on cards
    ("#4a4a4a", "#f4f5f7"),  # notes on the page
    ("#ffffff", "#0b5cad"),  # buttons
    ("#b00020", "#ffffff"),  # errors
    ("#1a1a1a", "#e8f1fb"),  # the operator's message
])
def test_page_colours_meet_wcag_aa_contrast(text: str, background: str) -> None:
    css = (Path(__file__).resolve().parent.parent / "waitingroom/web/static/queue.css").read_text()
    css = css.replace("#fff;", "#ffffff;").replace("#fff}", "#ffffff}")
    assert text in css and background in css  # the pairs are the stylesheet's own
    lighter, darker = sorted((_luminance(text), _luminance(background)), reverse=True)
    assert (lighter + 0.05) / (darker + 0.05) >= 4.5


def test_a_redis_server_on_path_older_than_7_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = tmp_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=6.2.6 sha=00000000:0 malloc=jemalloc'\n")
    old.chmod(0o755)
    monkeypatch.delenv("WAITINGROOM_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert server_version(str(old)) == "6.2.6"
    try:
        chosen = find_redis_server()
    except RedisServerError as exc:  # nothing else here: the message says why
        assert f"{old} is 6.2.6" in str(exc)
    else:
        assert chosen != str(old) and server_supported(server_version(chosen))


def test_a_chance_near_the_edge_holds_steady_while_the_estimate_wobbles() -> None:
    from waitingroom.room.chance import chance_of

    # Stock 100 at 0.5 a session reaches place 200; the likely edge is at 180.
    edges = [chance_of(p, stock=100, sales_per_session=0.5, active=0).level
             for p in (1, 180, 181, 220, 221, 1000)]
    assert edges == ["likely", "likely", "uncertain", "uncertain", "unlikely", "unlikely"]
    wobble = [0.49, 0.51, 0.495, 0.505, 0.49, 0.51]  # what sessions buy, re-measured
    fresh = [chance_of(178, stock=100, sales_per_session=s, active=0).level for s in wobble]
    assert len(set(fresh)) == 2  # with no memory the answer flips back and forth
    held, previous = [], None
    for spend in wobble:
        previous = chance_of(178, stock=100, sales_per_session=spend, active=0,
                             previous=previous).level
        held.append(previous)
    assert held == ["likely"] * len(wobble)
    assert chance_of(195, stock=100, sales_per_session=0.5, active=0,
                     previous="likely").level == "uncertain"  # a real move still shows
    assert chance_of(150, stock=100, sales_per_session=0.5, active=40).level == "uncertain"


def test_what_a_waiter_was_told_counts_only_for_its_own_place() -> None:
    value = told_value(12, 1_700_000_000_123, 3)
    assert read_told(value, 12) == (1_700_000_000_123, 3)
    assert read_told(value, 13) is None  # another place
    for junk in (None, "", "12.1", "12.1.3.4", "12.-1.3", "\uff11\uff12.1.3", "1" * 16 + ".1.1"):
        assert read_told(junk, 12) is None
