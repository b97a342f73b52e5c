"""The leave script added to the shop's pages as they pass (web/page_script.py): only
where it cannot break the page, in every encoding and framing it edits, under the
page's own Content-Security-Policy."""

from __future__ import annotations

import gzip
import itertools
import zlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from waitingroom.web.page_script import PageScript, editable_encodings, is_navigation

SRC = "/_wr/static/leave.js"
TAG = b'<script src="/_wr/static/leave.js" data-room="r" defer></script>'


def _run(headers: list[tuple[bytes, bytes]], chunks: list[bytes], status: int = 200
         ) -> tuple[dict[bytes, list[bytes]], bytes]:
    """The answer as the visitor gets it: its headers (by name) and its body."""
    script = PageScript(SRC, ' data-room="r"', "https://shop.test")
    start: dict[str, Any] = {"type": "http.response.start", "status": status,
                             "headers": headers}
    script.edit(start)
    body = b""
    for i, chunk in enumerate(chunks):
        message = {"type": "http.response.body", "body": chunk,
                   "more_body": i < len(chunks) - 1}
        body += script.edit(message)["body"]
    named: dict[bytes, list[bytes]] = {}
    for name, value in start["headers"]:
        named.setdefault(name.lower(), []).append(value)
    return named, body


PAGE = b"<!doctype html><html><head><title>t</title></head><body>hello</body></html>"
HTML = (b"content-type", b"text/html; charset=utf-8")


def test_a_plain_page_gets_the_tag_at_its_end_and_its_length_grows() -> None:
    headers, body = _run([HTML, (b"content-length", str(len(PAGE)).encode())],
                         [PAGE[:10], PAGE[10:]])
    assert body == PAGE + TAG
    assert headers[b"content-length"] == [str(len(PAGE + TAG)).encode()]


def test_a_streamed_page_is_passed_on_chunk_by_chunk() -> None:
    script = PageScript(SRC, "", "https://shop.test")
    script.edit({"type": "http.response.start", "status": 200, "headers": [HTML]})
    first = script.edit({"type": "http.response.body", "body": b"<p>one", "more_body": True})
    assert first["body"] == b"<p>one"  # nothing held back


def _packed(page: bytes, framing: str, level: int) -> bytes:
    """``page`` compressed as a server may send it: gzip (one member, or two), deflate
    in zlib's framing, or raw deflate (which browsers take too)."""
    if framing == "gzip":
        return gzip.compress(page, level)
    if framing == "gzip, two members":
        return gzip.compress(page[:len(page) // 2], level) + gzip.compress(
            page[len(page) // 2:], level)
    if framing == "zlib":
        return zlib.compress(page, level)
    raw = zlib.compressobj(level, zlib.DEFLATED, -15)
    return raw.compress(page) + raw.flush()


FRAMINGS = {"gzip": b"gzip", "gzip, two members": b"gzip", "zlib": b"deflate",
            "raw deflate": b"deflate"}


@settings(max_examples=80, deadline=None)
@given(page=st.binary(max_size=5000), cuts=st.lists(st.integers(0, 5000), max_size=8),
       framing=st.sampled_from(sorted(FRAMINGS)), level=st.integers(0, 9))
def test_a_compressed_page_in_any_chunks_decodes_to_itself_and_the_tag(
        page: bytes, cuts: list[int], framing: str, level: int) -> None:
    coding = FRAMINGS[framing]
    packed = _packed(page, framing, level)
    edges = sorted({0, len(packed), *(c % (len(packed) + 1) for c in cuts)})
    chunks = [packed[a:b] for a, b in itertools.pairwise(edges)] or [b""]
    headers, body = _run([HTML, (b"content-encoding", coding),
                          (b"content-length", str(len(packed)).encode())], chunks)
    assert b"content-length" not in headers  # its new length is not known ahead
    unpacked = gzip.decompress(body) if coding == b"gzip" else zlib.decompress(body)
    assert unpacked == page + TAG


def test_each_compressed_chunk_can_be_read_as_it_arrives() -> None:
    packed = gzip.compress(PAGE * 50)
    script = PageScript(SRC, "", "https://shop.test")
    script.edit({"type": "http.response.start", "status": 200,
                 "headers": [HTML, (b"content-encoding", b"gzip")]})
    half = script.edit({"type": "http.response.body", "body": packed[:len(packed) // 2],
                        "more_body": True})["body"]
    assert zlib.decompressobj(31).decompress(half)  # flushed, not held back


def test_a_page_broken_midway_ends_cleanly_with_what_could_be_read() -> None:
    packed = gzip.compress(PAGE * 20)
    _, body = _run([HTML, (b"content-encoding", b"gzip")],
                   [packed[:40], b"not gzip at all" * 4, packed[40:]])
    read = gzip.decompress(body)  # a whole gzip stream, no tag
    assert read and (PAGE * 20).startswith(read)


def test_a_page_that_is_not_what_it_says_goes_on_as_it_came() -> None:
    garbage = b"this is not compressed at all" * 3
    _, body = _run([HTML, (b"content-encoding", b"gzip")], [garbage[:10], garbage[10:]])
    assert body == garbage  # no tag, not emptied


def test_pages_it_cannot_or_must_not_edit_are_left_byte_for_byte() -> None:
    cases = [
        ([HTML, (b"content-encoding", b"br")], 200),
        ([HTML, (b"cache-control", b"public, no-transform")], 200),
        ([HTML, (b"content-digest", b"sha-256=:x:")], 200),
        ([(b"content-type", b"application/json")], 200),
        ([(b"content-type", b"text/html; charset=UTF-16")], 200),
        ([HTML], 404),
        ([HTML, (b"content-security-policy", b"default-src 'none'")], 200),
        ([HTML, (b"content-security-policy", b"script-src 'none'; img-src *")], 200),
    ]
    for headers, status in cases:
        out, body = _run(list(headers), [PAGE], status)
        assert body == PAGE, headers
        assert out == {k.lower(): [v] for k, v in headers}, headers


def test_a_strong_etag_becomes_weak_as_the_bytes_differ() -> None:
    headers, _ = _run([HTML, (b"etag", b'"abc"')], [PAGE])
    assert headers[b"etag"] == [b'W/"abc"']


def _policy_and_tag(policy: bytes) -> tuple[str, bytes]:
    headers, body = _run([HTML, (b"content-security-policy", policy)], [PAGE])
    return headers[b"content-security-policy"][0].decode(), body[len(PAGE):]


def test_a_policy_that_allows_same_site_scripts_is_left_as_it_is() -> None:
    for policy in (b"script-src 'self'", b"default-src 'self'; img-src *",
                   b"img-src 'self'", b"script-src * 'unsafe-inline'",
                   b"script-src https://shop.test"):
        assert _policy_and_tag(policy) == (policy.decode(), TAG)


def test_a_host_list_policy_gains_exactly_this_script() -> None:
    policy, tag = _policy_and_tag(b"default-src https://cdn.test 'unsafe-inline'; img-src *")
    assert tag == TAG
    assert "script-src https://cdn.test 'unsafe-inline' https://shop.test/_wr/static/leave.js" \
        in policy
    assert "default-src https://cdn.test 'unsafe-inline'" in policy  # the rest unchanged


def test_a_nonce_policy_gains_a_nonce_of_ours_and_keeps_its_own() -> None:
    policy, tag = _policy_and_tag(b"script-src 'nonce-theirs' 'strict-dynamic'")
    ours = tag.split(b'nonce="')[1].split(b'"')[0].decode()
    assert policy == f"script-src 'nonce-theirs' 'strict-dynamic' 'nonce-{ours}'"
    assert len(ours) >= 16


def test_every_policy_header_is_widened() -> None:
    headers, body = _run([HTML, (b"content-security-policy", b"script-src 'nonce-a'"),
                          (b"content-security-policy", b"script-src https://cdn.test")],
                         [PAGE])
    first, second = headers[b"content-security-policy"]
    assert b"'nonce-" in first and first.count(b"'nonce-") == 2
    assert second == b"script-src https://cdn.test https://shop.test/_wr/static/leave.js"
    assert body.endswith(b" defer></script>") and b'nonce="' in body


def test_only_page_navigations_are_edited_and_accept_encoding_is_narrowed() -> None:
    assert is_navigation([(b"sec-fetch-dest", b"document"), (b"accept", b"*/*")])
    assert not is_navigation([(b"sec-fetch-dest", b"empty"), (b"accept", b"text/html")])
    assert is_navigation([(b"accept", b"text/html,application/xhtml+xml")])
    assert not is_navigation([(b"accept", b"application/json")])
    assert editable_encodings([(b"accept-encoding", b"gzip, deflate, br, zstd"),
                               (b"x", b"y")]) == [(b"accept-encoding", b"gzip, deflate"),
                                                  (b"x", b"y")]
    assert editable_encodings([(b"accept-encoding", b"br;q=1.0, *")]) == [
        (b"accept-encoding", b"identity")]
