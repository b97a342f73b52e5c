"""The last hour of a room's numbers, sampled in each process, for the dashboard."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

SAMPLE_EVERY_SECONDS = 5.0
KEEP_SECONDS = 3600


class History:
    """A ring of samples: one every five seconds, an hour's worth."""

    def __init__(self) -> None:
        self.samples: deque[dict[str, Any]] = deque(
            maxlen=int(KEEP_SECONDS / SAMPLE_EVERY_SECONDS))
        self._next = 0.0

    def due(self) -> bool:
        """Is it time for the next sample?"""
        return time.monotonic() >= self._next

    def add(self, sample: dict[str, Any]) -> None:
        """Record ``sample`` (it should carry its own time, ``t`` in ms)."""
        self.samples.append(sample)
        self._next = time.monotonic() + SAMPLE_EVERY_SECONDS
