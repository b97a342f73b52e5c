"""Per-network limit on new places in line, counted in each process.

A bot farm can mint places by sending requests without cookies; a person gets one
place and keeps it with the ticket. Networks, not addresses, are counted (IPv4 /24,
IPv6 /48) so one host cannot dodge the limit by rotating through its own addresses.
Counted per process: behind N processes the effective limit is N times the setting.
"""

from __future__ import annotations

import ipaddress
import time

MAX_NETWORKS = 100_000
"""Networks remembered at once; the least recently seen is forgotten first."""


class NewPlaceLimit:
    """A token bucket per client network: ``per_minute`` new places, bursting to as
    many. ``per_minute`` 0 means no limit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}  # network -> (tokens, at)

    def allow(self, client: tuple[str, int] | list[object] | None) -> bool:
        """May the client at ``client`` (the ASGI scope's) take a new place now?"""
        if not self.per_minute or not client:
            return True
        network = _network(str(client[0]))
        now = time.monotonic()
        tokens, at = self._buckets.pop(network, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - at) * self.per_minute / 60)
        allowed = tokens >= 1
        self._buckets[network] = (tokens - 1 if allowed else tokens, now)  # now the newest
        if len(self._buckets) > MAX_NETWORKS:
            del self._buckets[next(iter(self._buckets))]
        return allowed

    @property
    def retry_after_seconds(self) -> int:
        """When a refused network will have a new place to give."""
        return max(1, round(60 / self.per_minute)) if self.per_minute else 1


def _network(host: str) -> str:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a unix socket path or a name: counted as itself
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
