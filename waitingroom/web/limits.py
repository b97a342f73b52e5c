"""Limits counted in each process: shares per network (new places, details left),
token buckets (notify-me requests per visitor and per network) and caps on things held
at once (live event streams, an admitted session's requests in flight).

A client that never sends the room's cookie back takes no place at all (see
``room/standing.py``); one that does could still mint places and records as fast as it
asks, so each network may make only a floor a minute, or a share of what everyone else
made. Networks, not addresses, are counted (IPv4 /24, IPv6 /48) so one host cannot
dodge a limit by rotating through its own addresses. Counted per process: behind N
processes a floor is N times the setting (a share is the same share).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from waitingroom.settings import Settings

MAX_KEYS = 100_000
"""Keys (networks, visitors) remembered at once; the least recently seen go first."""


class RateLimit:
    """A token bucket per key: ``per_minute`` tokens, bursting to as many (at least
    ``burst``). ``per_minute`` 0 means no limit."""

    def __init__(self, per_minute: float, *, burst: int = 0) -> None:
        self.per_minute = per_minute
        self._size = max(float(burst), per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def allow(self, key: str) -> bool:
        """May ``key`` spend a token now?"""
        if not self.per_minute:
            return True
        now = time.monotonic()
        tokens, at = self._buckets.pop(key, (self._size, now))
        tokens = min(self._size, tokens + (now - at) * self.per_minute / 60)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)  # now the newest
        if len(self._buckets) > MAX_KEYS:
            del self._buckets[next(iter(self._buckets))]
        return allowed

    def allow_network(self, client: tuple[str, int] | list[object] | None) -> bool:
        """May the network of ``client`` (the ASGI scope's) spend a token now?"""
        return not (self.per_minute and client) or self.allow(network_of(str(client[0])))

    @property
    def retry_after_seconds(self) -> int:
        """When a refused key will have a token again."""
        return max(1, round(60 / self.per_minute)) if self.per_minute else 1


class NetworkShare:
    """New things one client network may make (places in line, records left), per
    process: ``floor`` a minute always, and past that at most ``share`` of what every
    other network made in the last minute. A crowd behind one carrier NAT is a small
    share of a launch's arrivals and is not held back; one host (or a bot farm on one
    network) is held to the floor in a quiet room and to the share in a busy one.
    ``floor`` 0 means no limit. The last minute is estimated from this minute's and the
    last one's counts (a sliding window)."""

    def __init__(self, floor: int, share: float) -> None:
        self.floor = floor
        self.share = share
        self._minute = 0
        self._total = (0, 0)  # (this minute's count, the last minute's)
        self._counts: dict[str, tuple[int, int, int]] = {}  # key -> (minute, this, last)

    def allow(self, client: tuple[str, int] | list[object] | None) -> bool:
        """May the network of ``client`` (the ASGI scope's) make one more now? Counted
        if so."""
        if not (self.floor and client):
            return True
        now = time.monotonic() / 60
        minute, into = int(now), now % 1
        if minute != self._minute:
            this, _ = self._total
            self._total = (0, this if minute == self._minute + 1 else 0)
            self._minute = minute
        key = network_of(str(client[0]))
        seen, this, last = self._counts.pop(key, (minute, 0, 0))
        if seen != minute:
            this, last = 0, this if seen == minute - 1 else 0
        made = this + last * (1 - into)
        others = self._total[0] + self._total[1] * (1 - into) - made
        allowed = made < self.floor or made < self.share * others
        if allowed:
            this += 1
            self._total = (self._total[0] + 1, self._total[1])
        self._counts[key] = (minute, this, last)  # now the newest
        if len(self._counts) > MAX_KEYS:
            del self._counts[next(iter(self._counts))]
        return allowed

    @property
    def retry_after_seconds(self) -> int:
        """When a refused network may well be let make one again."""
        return max(1, round(60 / self.floor)) if self.floor else 1


def network_of(host: str) -> str:
    """The network ``host`` is counted in: its IPv4 /24 or IPv6 /48 (a name or a unix
    socket path counts as itself)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


class Slots:
    """At most ``size`` of something at once (live event streams, a session's
    requests in flight): :meth:`take` one, :meth:`give` it back."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.taken = 0

    def take(self) -> bool:
        """Take a slot if one is free."""
        if self.taken >= self.size:
            return False
        self.taken += 1
        return True

    def give(self) -> None:
        """Give a taken slot back."""
        self.taken -= 1


class KeyedSlots:
    """At most ``size`` at once per key (each admitted session's requests in flight);
    keys with nothing taken are forgotten."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._taken: dict[str, int] = {}

    def take(self, key: str) -> bool:
        """Take one of ``key``'s slots if one is free."""
        taken = self._taken.get(key, 0)
        if taken >= self.size:
            return False
        self._taken[key] = taken + 1
        return True

    def give(self, key: str) -> None:
        """Give one of ``key``'s slots back."""
        taken = self._taken.pop(key) - 1
        if taken:
            self._taken[key] = taken


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    """The limits one process keeps for all its rooms, from the settings."""

    new_places: NetworkShare
    """New places in line per client network."""
    records: NetworkShare
    """Details left (capture and interest forms) per client network."""
    notify_per_visitor: RateLimit
    notify_per_network: RateLimit
    event_streams: Slots
    """Live ``/_wr/events`` streams."""
    session_requests: KeyedSlots
    """Requests in flight per admitted session."""
    session_sockets: KeyedSlots
    """WebSockets open per admitted session."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcessLimits:
        """The limits ``settings`` ask for."""
        return cls(NetworkShare(settings.new_places_per_minute_per_network,
                                settings.network_share),
                   NetworkShare(settings.records_per_minute_per_network,
                                settings.network_share),
                   RateLimit(settings.notify_per_hour_per_visitor / 60,
                             burst=settings.notify_per_hour_per_visitor),
                   RateLimit(settings.notify_per_hour_per_network / 60,
                             burst=settings.notify_per_hour_per_network),
                   Slots(settings.max_event_streams),
                   KeyedSlots(settings.session_max_concurrent_requests),
                   KeyedSlots(settings.session_max_websockets))
