"""Limits counted in each process: shares per network (new places, details left),
token buckets (notify-me requests per visitor and per network) and caps on things held
at once (live event streams, an admitted session's requests in flight).

A client that never sends the room's cookie back takes no place at all (see
``door/standing.py``); one that does could still mint places and records as fast as it
asks, so each network may make only a floor a minute, or a share of what everyone else
made. Networks, not addresses, are counted (IPv4 /24, IPv6 /48) so one host cannot
dodge a limit by rotating through its own addresses. Counted per process: behind N
processes a floor is N times the setting (a share is the same share).
"""

from __future__ import annotations

import functools
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
    process: ``floor`` a minute always; past that, only while everything made past a
    floor in the last minute, by every network, stays under ``share`` of what was made
    within the floors. A crowd behind one carrier NAT in a busy launch is a small part of
    its arrivals and is not held back; a bot farm, on one network or on many, adds at
    most its floors and that share. ``floor`` 0 means no limit. The last minute is
    estimated from this minute's counts and the last one's (a sliding window)."""

    def __init__(self, floor: int, share: float) -> None:
        self.floor = floor
        self.share = share
        self._minute = 0
        self._within = _Window()  # made within a network's floor
        self._past = _Window()  # made past a network's floor
        self._counts: dict[str, _Window] = {}

    def allow(self, client: tuple[str, int] | list[object] | None) -> bool:
        """May the network of ``client`` (the ASGI scope's) make one more now? Counted
        if so."""
        if not (self.floor and client):
            return True
        now = time.monotonic() / 60
        minute, into = int(now), now % 1
        key = network_of(str(client[0]))
        counts = self._counts.pop(key, None) or _Window()
        self._counts[key] = counts  # now the newest
        if len(self._counts) > MAX_KEYS:
            del self._counts[next(iter(self._counts))]
        if counts.last_minute(minute, into) < self.floor:
            counts.add(minute)
            self._within.add(minute)
            return True
        if self._past.last_minute(minute, into) + 1 <= self.share * self._within.last_minute(
                minute, into):
            counts.add(minute)
            self._past.add(minute)
            return True
        return False

    @property
    def retry_after_seconds(self) -> int:
        """When a refused network may well be let make one again."""
        return max(1, round(60 / self.floor)) if self.floor else 1


class _Window:
    """A count over the last minute: this minute's, and the last one's weighted by how
    much of it is still within the last sixty seconds."""

    __slots__ = ("last", "minute", "this")

    def __init__(self) -> None:
        self.minute, self.this, self.last = 0, 0, 0

    def _roll(self, minute: int) -> None:
        if minute != self.minute:
            self.this, self.last = 0, self.this if minute == self.minute + 1 else 0
            self.minute = minute

    def last_minute(self, minute: int, into: float) -> float:
        """The count over the sixty seconds to now (``into`` the current minute)."""
        self._roll(minute)
        return self.this + self.last * (1 - into)

    def add(self, minute: int) -> None:
        """One more, now."""
        self._roll(minute)
        self.this += 1


@functools.lru_cache(maxsize=16384)
def network_of(host: str) -> str:
    """The network ``host`` is counted in: its IPv4 /24 (an IPv4-mapped IPv6 address's
    too) or IPv6 /48 (a name or a unix socket path counts as itself). Remembered:
    parsing an address costs 7 us, a fifteenth of an admitted request."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # an IPv4 client on a dual-stack socket
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

    def keys(self) -> list[str]:
        """The keys holding a slot now."""
        return list(self._taken)


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
