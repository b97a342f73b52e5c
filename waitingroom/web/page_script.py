"""One ``<script>`` added to the shop's own HTML pages as they pass (the room's
``leave.js`` beacon, so a closed tab frees its slot in seconds with no change to the
shop's pages).

Only where it cannot break the page: a ``GET`` made by navigating (not a script's
call), a ``200`` answer of ``text/html``, not marked ``no-transform``, in an encoding
this module can edit (none, ``gzip`` or ``deflate``: :func:`editable_encodings` asks the
shop for no other for such requests), and a Content-Security-Policy that lets the
script run or can be widened for exactly this script. The tag goes at the end of the
document (after ``</html>`` a browser still runs it): nothing is held back, so a
streamed page streams as before. A compressed page is decompressed and compressed
again chunk by chunk, each chunk flushed as it comes.
"""

from __future__ import annotations

import secrets
import zlib
from collections.abc import Iterable

from starlette.types import Message

_ENCODINGS = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}
"""The content codings edited, and their zlib window bits (gzip or zlib framing)."""
_CODING_NAMES = frozenset(_ENCODINGS) | {b"identity"}
_SCRIPT_DIRECTIVES = ("script-src-elem", "script-src", "default-src")
"""The CSP directives that govern a ``<script src>``, the first present wins."""
_DIGESTS = frozenset({b"content-md5", b"digest", b"content-digest", b"repr-digest"})
"""Headers that vouch for the body's bytes: such a page is left as it is."""
_NONCE_KINDS = ("'nonce-", "'sha256-", "'sha384-", "'sha512-", "'strict-dynamic'")
"""Sources after which only a nonce lets a new script run ('unsafe-inline' and host
lists are ignored already, so adding a nonce changes nothing else)."""


def is_navigation(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Did the browser ask for a page to show (not a script, an image, a frame's
    sub-resource)? ``Sec-Fetch-Dest: document``; without Fetch metadata (older
    browsers), an ``Accept`` that names HTML."""
    accept = b""
    for name, value in headers:
        if name == b"sec-fetch-dest":
            return value == b"document"
        if name == b"accept":
            accept = value
    return b"text/html" in accept


def editable_encodings(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Accept-Encoding`` down to the codings a page can be edited
    in (a page is then sent gzip'd instead of, say, in Brotli)."""
    edited = []
    for name, value in headers:
        if name == b"accept-encoding":
            kept = [part.strip() for part in value.split(b",")
                    if part.split(b";")[0].strip().lower() in _CODING_NAMES]
            value = b", ".join(kept) or b"identity"  # none at all would mean any
        edited.append((name, value))
    return edited


class PageScript:
    """Adds ``<script src="{src}" …>`` to one answer, if it is a page it can safely
    edit: feed every message the app sends through :meth:`edit`. ``origin``: the
    site's ``scheme://host``, for a policy that lists hosts."""

    def __init__(self, src: str, attributes: str, origin: str) -> None:
        self._src, self._attributes, self._origin = src, attributes, origin
        self._tag = b""
        self._bits = 0
        self._inflate: zlib._Decompress | None = None
        self._deflate: zlib._Compress | None = None
        self._held = b""  # the compressed bytes read while nothing is sent yet
        self._sent = False
        self._done = True  # until a page is seen
        self._broken = False

    def edit(self, message: Message) -> Message:
        """``message`` as it goes to the visitor (edited in place)."""
        if message["type"] == "http.response.start":
            self._start(message)
        elif message["type"] == "http.response.body" and not self._done:
            message["body"] = self._body(message.get("body", b""),
                                         last=not message.get("more_body", False))
        elif message["type"] == "http.response.body" and self._broken:
            message["body"] = b""
        return message

    def _start(self, message: Message) -> None:
        if message["status"] != 200:
            return
        headers: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
        html, coding, policies = False, b"", []
        for i, (name, value) in enumerate(headers):
            lower, value = name.lower(), value.lower()
            if lower == b"content-type":
                html = value.startswith(b"text/html") and b"utf-16" not in value
            elif lower == b"content-encoding":
                coding = value.strip()
            elif lower in _DIGESTS or (lower == b"cache-control" and b"no-transform" in value):
                return
            elif lower == b"content-security-policy":
                policies.append(i)
        if not html or (coding and coding not in _ENCODINGS):
            return
        nonce = ""
        for i in policies:
            policy, needs_nonce = self._policy_for_script(headers[i][1].decode("latin-1"))
            if policy is None:
                return  # the shop's policy forbids scripts here: leave the page be
            if needs_nonce:
                nonce = nonce or secrets.token_urlsafe(12)
                policy = policy.replace("'nonce-?'", f"'nonce-{nonce}'")
            headers[i] = (headers[i][0], policy.encode("latin-1"))
        nonce_attribute = f' nonce="{nonce}"' if nonce else ""
        self._tag = (f'<script src="{self._src}"{self._attributes}{nonce_attribute} defer>'
                     "</script>").encode()
        edited = []
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                if not coding and value.strip().isdigit():
                    edited.append((name, str(int(value) + len(self._tag)).encode()))
            elif lower == b"etag" and not value.startswith(b"W/"):
                edited.append((name, b"W/" + value))  # the bytes differ: a weak validator
            else:
                edited.append((name, value))
        if coding:
            self._bits = _ENCODINGS[coding]
            self._deflate = zlib.compressobj(6, zlib.DEFLATED, self._bits)
        message["headers"] = edited
        self._done = False

    def _policy_for_script(self, policy: str) -> tuple[str | None, bool]:
        """``policy`` widened for the script: (the policy, whether it needs the nonce
        marked ``'nonce-?'``), or (None, False) if it forbids scripts outright."""
        directives = [d.strip() for d in policy.split(";")]
        by_name = {d.split()[0].lower(): i for i, d in reversed(list(enumerate(directives)))
                   if d}
        governing = next((n for n in _SCRIPT_DIRECTIVES if n in by_name), None)
        if governing is None:
            return policy, False
        sources = directives[by_name[governing]].split()[1:]
        lowered = [s.lower() for s in sources]
        if "'none'" in lowered and len(lowered) == 1:
            return None, False
        if any(s.startswith(_NONCE_KINDS) for s in lowered):
            added = "'nonce-?'"
        elif "'self'" in lowered or "*" in lowered or self._origin.lower() in lowered:
            return policy, False
        else:
            added = f"{self._origin}{self._src}"
        if governing == "default-src":  # give scripts a directive of their own
            directives.append(f"script-src {' '.join(sources)} {added}")
        else:
            directives[by_name[governing]] += f" {added}"
        return "; ".join(d for d in directives if d), added == "'nonce-?'"

    def _body(self, chunk: bytes, *, last: bool) -> bytes:
        if self._deflate is None:
            if last:
                self._done = True
                return chunk + self._tag
            return chunk
        try:
            plain = self._inflated(chunk)
        except zlib.error:
            if not self._sent:  # not what it said it was: passed on as it came
                self._deflate, self._tag, held = None, b"", self._held
                return self._body(held, last=last)
            last, plain, self._broken, self._tag = True, b"", True, b""  # ended cleanly
        if last:
            self._done = True
            return self._deflate.compress(plain + self._tag) + self._deflate.flush(
                zlib.Z_FINISH)
        if not plain:
            return b""  # nothing yet: until something is sent, it may still go as it came
        self._sent, self._held = True, b""
        return self._deflate.compress(plain) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def _inflated(self, chunk: bytes) -> bytes:
        """The page's bytes in ``chunk``: every gzip member in turn; a deflate body in
        zlib's framing or raw (browsers take both), told by its first bytes."""
        if not self._sent:
            self._held += chunk
        if self._inflate is None:
            if self._bits == 15 and len(self._held) < 2:
                return b""  # too little to tell its framing yet
            framed = self._bits != 15 or (self._held[0] & 0x0F == 8 and int.from_bytes(
                self._held[:2], "big") % 31 == 0)
            self._inflate = zlib.decompressobj(self._bits if framed else -15)
            chunk = self._held
        plain = self._inflate.decompress(chunk)
        while self._inflate.eof and self._inflate.unused_data and self._bits == 31:
            rest = self._inflate.unused_data  # another gzip member follows
            self._inflate = zlib.decompressobj(31)
            plain += self._inflate.decompress(rest)
        return plain
