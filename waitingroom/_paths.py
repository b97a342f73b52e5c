"""Which request paths are gated (the order flow) and which always pass."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

RESERVED_PREFIX = "/_wr/"


def _compile(patterns: Sequence[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(fnmatch.translate(p) for p in patterns))


class PathRules:
    """Glob rules (``/checkout*``, ``/static/*``): open patterns win over gated ones.

    With no gated patterns every path is gated except the open ones. The reserved
    prefix ``/_wr/`` belongs to the waiting room and is never gated or forwarded.
    """

    def __init__(self, gated: Sequence[str] = (), open_: Sequence[str] = ()) -> None:
        self._gated = _compile(gated)
        self._open = _compile(open_)

    def is_gated(self, path: str) -> bool:
        """True if a request for ``path`` must hold a session to reach the origin."""
        if self._open is not None and self._open.match(path):
            return False
        return self._gated is None or self._gated.match(path) is not None
