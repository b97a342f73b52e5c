"""Request paths: one canonical spelling, and which room (if any) gates it (globs).

The path is put into its one canonical form before anything looks at it, and that
same form is what the app or origin receives, so that no spelling of a gated path
(``/x/../checkout``, ``//checkout``, ``/%63heckout``, ``/static/..;/checkout``) can be
routed as one path and served as another.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import quote

from starlette.types import Scope

RESERVED_PREFIX = "/_wr/"

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Anything that may make a path non-canonical: escapes, empty or dot segments, a
# backslash, a parameter, or a byte outside printable ASCII.
_NEEDS_WORK = re.compile(rb"%|//|/\.|\\|;|[^\x21-\x7e]")
_ESCAPE = re.compile(rb"%(?:([0-9A-Fa-f]{2})|)")
_RAW_NON_ASCII = re.compile(rb"[\x80-\xff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadPath(ValueError):
    """A path with no safe canonical form: an encoded ``/``, ``\\`` or control
    character, a bad escape, invalid UTF-8, or a dot segment hidden by a parameter."""


class CanonicalPath(NamedTuple):
    """A path in its canonical form, as sent (``raw``) and decoded (``path``)."""

    raw: bytes
    path: str


def canonical_path(raw: bytes) -> CanonicalPath:
    """The one spelling of ``raw`` (RFC 3986 §6.2.2): unreserved characters decoded,
    other escapes in upper case, non-ASCII bytes escaped, dot segments resolved,
    repeated slashes merged. Raises :class:`BadPath` for what cannot be made safe."""
    if not raw.startswith(b"/"):
        raise BadPath("a path starts with /")
    if not _NEEDS_WORK.search(raw):  # the everyday case: nothing to do
        return CanonicalPath(raw, raw.decode("ascii"))
    if b"\\" in raw or re.search(rb"[\x00-\x20\x7f]", raw):
        raise BadPath("a backslash, space or control character")
    kept: list[bytes] = []
    segments = raw.split(b"/")[1:]
    for index, segment in enumerate(segments):
        segment = _ESCAPE.sub(_escape, segment)
        if segment in (b"", b".", b".."):
            if segment == b".." and kept:
                kept.pop()
            if index == len(segments) - 1 and kept:
                kept.append(b"")  # the path still names a folder: keep its slash
            continue
        if segment.split(b";", 1)[0] in (b".", b".."):  # servers that drop ;params
            raise BadPath("a dot segment with a parameter")
        kept.append(segment)
    canonical = _RAW_NON_ASCII.sub(lambda m: b"%%%02X" % m[0][0], b"/" + b"/".join(kept))
    try:
        decoded = _unescape(canonical).decode("utf-8")
    except UnicodeDecodeError:
        raise BadPath("not UTF-8") from None
    if _CONTROL.search(decoded):
        raise BadPath("a control character")
    return CanonicalPath(canonical, decoded)


def canonical_scope(scope: Scope) -> Scope:
    """``scope`` with its path in canonical form (``scope`` itself if it already is,
    the everyday case, at the cost of one regex search). Raises :class:`BadPath`."""
    raw: bytes | None = scope.get("raw_path")
    if raw is not None and raw[:1] == b"/" and not _NEEDS_WORK.search(raw):
        return scope
    canonical = canonical_path(raw or quote(scope["path"]).encode())
    return {**scope, "path": canonical.path, "raw_path": canonical.raw}


def route_path(scope: Scope) -> str:
    """The path the app routes: ``path`` less the ``root_path`` it runs under (a
    Starlette ``Mount``, ``uvicorn --root-path``), as Starlette and WSGI do: ASGI servers
    and mounts put the root path in ``path`` too, and a gate matched on that would let
    ``/shop/checkout`` through to the route ``/checkout``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "").rstrip("/")  # "/shop/" mounts as "/shop" does
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("/", ""):
        return path[len(root):] or "/"
    return path


def _escape(match: re.Match[bytes]) -> bytes:
    """One ``%XX``: decoded if unreserved, refused if it would change the path's
    structure or hide a control character, else kept in upper case."""
    if match[1] is None:
        raise BadPath("a % that starts no escape")
    value = int(match[1], 16)
    if value in _UNRESERVED:
        return bytes((value,))
    if value in (0x2F, 0x5C) or value < 0x20 or value == 0x7F:
        raise BadPath("an encoded slash, backslash or control character")
    return b"%%%02X" % value


def _unescape(canonical: bytes) -> bytes:
    return re.sub(rb"%([0-9A-F]{2})", lambda m: bytes((int(m[1], 16),)), canonical)


def _compile(patterns: Sequence[str], fold_case: bool) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns),
                      re.IGNORECASE if fold_case else 0)


def _without_params(path: str) -> str:
    """``path`` as servers that drop ``;params`` from each segment read it (Tomcat)."""
    return re.sub("/+", "/", "/".join(segment.split(";", 1)[0] for segment in path.split("/")))


class Router:
    """Glob rules (``/checkout*``, ``/static/*``) deciding which room gates a path.

    Open patterns win over everything. Then rooms created at run time, oldest first;
    then the configured room's gated patterns, where none means every other path.
    The reserved prefix ``/_wr/`` belongs to the waiting room and is never routed.
    Paths are canonical (:func:`canonical_path`); one with ``;params`` is gated if it
    is gated as written or as read by a server that drops them. ``fold_case``: gated
    patterns match without regard to case (many origins ignore it: IIS, ASP.NET, CDN
    rules), the safe side, as a false match only queues a visitor; open patterns are
    always matched exactly, as a false match there would let one through.
    """

    def __init__(
        self, room: str, gated: Sequence[str] = (), open_: Sequence[str] = (),
        rooms: Sequence[tuple[str, Sequence[str]]] = (), *, fold_case: bool = True,
    ) -> None:
        self._room = room
        self._gated_source = tuple(gated)
        self._open_source = tuple(open_)
        self._fold_case = fold_case
        self._gated = _compile(gated, fold_case)
        self._open = _compile(open_, False)
        self._rooms = [(name, _compile(paths, fold_case)) for name, paths in rooms]

    def with_rooms(self, rooms: Sequence[tuple[str, Sequence[str]]]) -> Router:
        """The same rules with ``rooms`` (name, patterns) as the run-time rooms."""
        return Router(self._room, self._gated_source, self._open_source, rooms,
                      fold_case=self._fold_case)

    def is_open(self, path: str) -> bool:
        """True if ``path`` always passes (an open pattern, however it is read)."""
        return all(self._is_open(p) for p in self._readings(path))

    def route(self, path: str) -> str | None:
        """The name of the room gating ``path``, or None if it passes ungated."""
        for reading in self._readings(path):
            name = self._route(reading)
            if name is not None:
                return name
        return None

    def _readings(self, path: str) -> tuple[str, ...]:
        return (path, _without_params(path)) if ";" in path else (path,)

    def _is_open(self, path: str) -> bool:
        return self._open is not None and self._open.match(path) is not None

    def _route(self, path: str) -> str | None:
        if self._is_open(path):
            return None
        for name, paths in self._rooms:
            if paths is not None and paths.match(path):
                return name
        if self._gated is None or self._gated.match(path):
            return self._room
        return None
