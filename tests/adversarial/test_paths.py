"""The canonical path and the router, as pure functions, against random hostile paths."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote_to_bytes

from hypothesis import given, settings
from hypothesis import strategies as st

from waitingroom.web.paths import BadPath, Router, canonical_path

# Path pieces an attacker mixes: dot segments, slashes, escapes of every kind
# (unreserved, reserved, slash, backslash, NUL, bad hex), parameters, non-ASCII.
_PIECES = st.sampled_from([
    "/", "//", ".", "..", "%2e", "%2E%2e", "checkout", "static", "CHECKOUT", "%63", "%2f",
    "%5c", "%00", "%0a", "%ff", "%c3%a9", "%zz", "%", ";", ";p=1", "..;", "a", "~", "%7E",
    "%20", "é", "\\",
])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=12).map(lambda p: "/" + "".join(p)))
def test_the_canonical_path_is_a_fixed_point_with_no_way_round(raw: str) -> None:
    try:
        canonical = canonical_path(raw.encode())
    except BadPath:
        return  # refused: nothing is routed or forwarded
    assert canonical_path(canonical.raw) == canonical  # one spelling, stable
    segments = canonical.raw.split(b"/")[1:]
    assert b"." not in segments and b".." not in segments
    assert b"//" not in canonical.raw and canonical.raw.isascii()
    assert all(s.split(b";", 1)[0] not in (b".", b"..") for s in segments)
    # What is routed is what the origin, decoding, will read.
    assert unquote_to_bytes(canonical.raw).decode() == canonical.path
    assert posixpath.normpath(canonical.path) == (canonical.path.rstrip("/") or "/")


def test_a_parameter_cannot_hide_a_gated_path() -> None:
    router = Router("main", ("/done", "/checkout/*"), ("/static/*",))
    assert router.route("/done;jsessionid=1") == "main"  # Tomcat serves /done
    assert router.route("/checkout;x/pay") == "main"
    assert router.route("/static/a;x") is None
    assert not router.is_open("/static;x/a.css")  # open only if open however it is read


def test_gated_paths_match_in_any_case_by_default_and_open_ones_exactly() -> None:
    router = Router("main", ("/checkout*",), ("/static/*",))
    assert router.route("/CheckOut/Pay") == "main"
    assert router.route("/static/a.css") is None
    assert not router.is_open("/STATIC/a.css")  # open only as written
    everything = Router("main", (), ("/static/*",))  # every path not open is gated
    assert everything.route("/STATIC/a.css") == "main"
    assert Router("main", ("/checkout*",), fold_case=False).route("/CHECKOUT") is None
    rooms = Router("main", ("/checkout*",)).with_rooms([("tv", ("/tv/*",))])
    assert rooms.route("/TV/a") == "tv"
