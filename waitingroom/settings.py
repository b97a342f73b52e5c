"""One frozen, validated settings object, built once at start-up
(:func:`waitingroom.config.load_settings` reads it from its sources). A bad value
raises :class:`~waitingroom.errors.ConfigError` naming the key."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from waitingroom.errors import ConfigError
from waitingroom.fields import parse_fields
from waitingroom.tls import tls_context

ENV_PREFIX = "WAITINGROOM_"
ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_MIN_SECRET_LENGTH = 16
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster",
                 "redis+sentinel")
_MAX_MESSAGE_LENGTH = 500
_MAX_PLANNED = 100
SECRET_SETTINGS = frozenset({"secret", "admin_token", "metrics_token", "smtp_url",
                             "notify_webhook_secret"})
"""Settings taken from the environment or the config file only, never from a flag (a
process's arguments are visible to every user of the machine)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a waiting room process needs; see ``docs/configuration.md``."""

    room: str = "default"
    """Room name: lowercase letters, digits and dashes; it names the Redis keys."""
    origin: str = ""
    """Origin URL the standalone proxy forwards to (``serve`` only)."""
    host: str = "127.0.0.1"
    """Address ``serve`` listens on (``0.0.0.0`` for every interface)."""
    port: int = 8000
    """Port ``serve`` listens on."""
    workers: int = 1
    """Worker processes of ``serve`` (each with its own connections to Redis)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """One Redis (``redis://``, ``rediss://``, ``unix://``); a Redis Cluster given by any
    of its nodes (``redis+cluster://host:port``): each room lives on one shard; or a
    Sentinel-watched primary (``redis+sentinel://host:26379[,host:26379]/service[/db]``)."""
    capacity: int = 100
    """Concurrent sessions the order flow can serve; seeds the room's live value."""
    api_wait_status: int = 429
    """A script's gated call (fetch/XHR, JSON asked for) gets it while its caller waits,
    with ``Retry-After`` and the status JSON: 429, 503, or 200 (body-only clients)."""
    adaptive_interval_seconds: int = 5
    """How often an adaptive room judges the origin's answers and moves its cap."""
    secret: tuple[str, ...] = field(default=(), repr=False)
    """Signing secrets, newest first: the first signs, all verify (key rotation)."""
    grace_seconds: int = 60
    """How long a waiting visitor may go unseen before the place is released. A slot
    given to a visitor is held a twelfth of it (2 to 10 s) for the visitor to come;
    one who comes later still gets the first free slot, within the grace."""
    session_idle_seconds: int = 300
    """A session with no request for this long ends, and its slot goes to the next."""
    session_first_idle_seconds: int = 10
    """Idle time of a session of one request only (0: ``session_idle_seconds``); the
    page's ``leave.js`` makes it one like any within a second. Ended so, it keeps the
    first free slot for the grace."""
    session_max_seconds: int = 1800
    """A session ends this long after it began, however busy."""
    session_renewal: bool = True
    """False: fixed-length sessions, each ending ``session_max_seconds`` after its first
    request, busy or idle (no idle timeout; the origin's release still ends it)."""
    leave_beacon: bool = True
    """Add ``leave.js`` to the shop's pages as admitted shoppers load them (gzip, streams
    and the page's own CSP handled): a closed tab frees its slot in seconds."""
    ticket_max_age_seconds: int = 86_400
    """Queue tickets older than this are void (a fresh place at the back)."""
    gated_paths: tuple[str, ...] = ()
    """Glob patterns of the order flow; empty means every path not open."""
    open_paths: tuple[str, ...] = ()
    """Glob patterns that always pass (login, static assets, ...)."""
    case_insensitive_paths: bool = True
    """Gated paths match without regard to case (``/CHECKOUT`` is gated like
    ``/checkout``), for the many origins that ignore it; open paths are always exact."""
    shop_name: str = ""
    """The shop's name, shown on the queue page and in its title (empty: none)."""
    templates_dir: str = ""
    """A folder of the shop's own page templates (Jinja2, named as ours: ``base.html``
    frames every visitor page) and, in ``static/``, files served under ``/_wr/brand/``;
    empty: ours. Escaping is always on; see docs/branding.md."""
    locales_dir: str = ""
    """A folder of gettext catalogs, ``<language code>.po``, adding languages to the
    visitor's pages or replacing our words in one; empty: ours (en, fr, de)."""
    stylesheet: str = ""
    """A path on this site of a stylesheet linked after ours on every visitor page
    (e.g. ``/_wr/brand/shop.css``); empty: none."""
    logo: str = ""
    """A path on this site of the shop's logo, shown atop every visitor page (its
    alternative text is ``shop_name``); empty: none."""
    message: str = ""
    """Operator message shown to waiting visitors; seeds the room's live value."""
    origin_timeout_seconds: float = 30.0
    """How long ``serve`` waits for the origin's answer (504 past it)."""
    origin_connect_timeout_seconds: float = 5.0
    """How long ``serve`` waits to connect to the origin (502 if it fails)."""
    origin_max_connections: int = 1000
    """Connections the proxy opens to the origin at most, per process."""
    origin_slot_timeout_seconds: float = 5.0
    """How long a request waits for a free origin connection before a 503."""
    max_request_body_bytes: int = 10 * 1024 * 1024
    """Largest request body the proxy forwards (413 past it)."""
    max_request_head_bytes: int = 32 * 1024
    """Largest request line and headers ``serve`` reads (431 past it; a URL alone
    over 8 KiB gets 414)."""
    max_request_headers: int = 100
    """Most request header lines ``serve`` reads (431 past it)."""
    request_head_timeout_seconds: float = 10.0
    """A request head must be whole this long after one is due (the connection opened,
    or the last answer ended), or ``serve`` answers 408 and closes the connection."""
    request_body_timeout_seconds: float = 20.0
    """A request body may take this long, plus a second per
    ``request_body_min_bytes_per_second`` it brings, before ``serve`` cuts it off."""
    request_body_min_bytes_per_second: int = 500
    """The pace a request body must keep after ``request_body_timeout_seconds``."""
    session_max_concurrent_requests: int = 64
    """Requests one admitted session may have at the app or origin at once (429 past
    it): one pass cannot take the connections everyone else needs."""
    session_max_websockets: int = 8
    """WebSockets one admitted session may hold open at once (closed, 1008, past it)."""
    max_event_streams: int = 10_000
    """Live ``/_wr/events`` streams per process; past it, visitors poll (503)."""
    origin_ca_file: str = ""
    """PEM file of certificate authorities trusted, beside the system's, for an https
    origin and the health check URL (an internal CA)."""
    capture: str = "auto"
    """Data-capture mode: ``auto`` (when the breaker opens), ``on`` or ``off`` (forced).
    Seeds the room's live value."""
    capture_fields: str = ("name:text:required,email:email:required,phone:phone,"
                           "product:text:required,store:text,consent:consent:required")
    """The capture form: comma-separated ``name:kind[:required][:max length]``; kinds
    ``text``, ``email``, ``phone``, ``consent``, ``choice(a|b|c)``."""
    capture_spool_dir: str = "waitingroom-spool"
    """Local folder for captures taken while Redis is unreachable (fsync'd)."""
    capture_rate_per_minute: int = 5
    """Capture submissions one visitor may make per minute."""
    breaker_window_seconds: int = 10
    """The sliding window of order-flow outcomes the breaker judges."""
    breaker_failure_ratio: float = 0.5
    """The share of failures in the window that opens the breaker (capture mode)."""
    breaker_min_requests: int = 5
    """Fewer order-flow requests than this in the window never open the breaker."""
    breaker_cooldown_seconds: int = 15
    """How long the breaker stays open before letting probe requests through."""
    breaker_probes: int = 3
    """Successful probes in a row that close the breaker again."""
    health_check_url: str = ""
    """Optional origin URL the half-open breaker probes itself (GET; < 500 is healthy),
    so it closes even when no admitted visitor happens to make a request."""
    admin_token: tuple[str, ...] = field(default=(), repr=False)
    """Admin API bearer tokens, ``name:token`` (the name goes in the audit log) or a bare
    token (audited as ``admin``); comma-separated. None configured: no admin API."""
    metrics_token: tuple[str, ...] = field(default=(), repr=False)
    """Bearer tokens that may read ``/_wr/metrics`` and nothing else (a scraper's)."""
    new_places_per_minute_per_network: int = 30
    """New places one client network (IPv4 /24, IPv6 /48) may always take a minute in
    each process; past the floors, ``network_share`` of those within them. 0: no limit."""
    records_per_minute_per_network: int = 20
    """The same for details left (capture and interest forms). 0 = no limit."""
    network_share: float = 0.1
    """What networks may take past their floors, as a share of what was taken within
    them in the last minute: the most a bot farm adds to the line past its floors."""
    redis_down: str = "closed"
    """What gated paths do while Redis is unreachable: ``closed`` (the 503 retry page),
    ``passes`` (holders of a genuine session pass go through; newcomers wait) or
    ``open`` (everybody goes through: the origin takes its chances)."""
    smtp_url: str = field(default="", repr=False)
    """Notify me by email: ``smtp://host:port`` (``smtp://user:password@host:587`` uses
    STARTTLS and logs in). Empty: no email."""
    notify_from: str = "waitingroom@localhost"
    """The sender of notify-me emails."""
    notify_webhook_url: str = ""
    """Notify me by webhook (e.g. an SMS gateway): JSON POSTed with an HMAC signature."""
    notify_webhook_secret: str = field(default="", repr=False)
    """The notify-me webhook's HMAC key, at least 16 characters."""
    notify_claim_seconds: int = 900
    """How long a notified visitor has to come back once it is their turn."""
    notify_per_hour_per_visitor: int = 5
    """Notify-me requests one place in line may make per hour (per process)."""
    notify_per_hour_per_network: int = 30
    """Notify-me requests one client network may make per hour (per process)."""
    public_url: str = ""
    """The site's address as visitors reach it (``https://shop.example``), for links sent
    or shown for elsewhere (notify-me, another device). Required with notify-me; without
    it, a link shown on a page takes the request's own ``Host``."""
    pow_difficulty: int = 0
    """Proof of work before a new place in line, in leading zero bits of SHA-256 (16 is
    about a second on a phone); 0 = none. Needs JavaScript (or an API client that
    solves it); see docs/security.md."""
    forwarded_allow_ips: str = ""
    """Addresses of a load balancer whose X-Forwarded-For/Proto to trust (comma-
    separated, ``*`` for any); empty trusts none, so clients cannot spoof them."""
    timeline: tuple[tuple[int, str], ...] = ()
    """Changes planned for the room, each applied once by one process when due (as by
    ``waitingroom admin plan``), and never again after a restart: in the file,
    ``[[timeline]]`` tables of an ``at`` (ISO 8601 with its zone) and the live settings
    (as ``POST /_wr/admin/room`` takes them); in the environment, the same as JSON.
    Held as (epoch ms, the settings as JSON)."""

    def __post_init__(self) -> None:
        _check_all(self)

    def require(self, *names: str) -> None:
        """Raise :class:`ConfigError` for the first of ``names`` left empty."""
        for name in names:
            if not getattr(self, name):
                flag = "" if name in SECRET_SETTINGS else f"--{name.replace('_', '-')}, or "
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}",
                                  f"is required (or {flag}{name} in the config file)")


def _check_all(settings: Settings) -> None:
    """Every value in range; ConfigError naming the first that is not."""
    _check(bool(ROOM_NAME.fullmatch(settings.room)), "room",
           "lowercase letters, digits and dashes, at most 32")
    if settings.origin:
        parts = urlsplit(settings.origin)
        _check(parts.scheme in ("http", "https") and bool(parts.hostname), "origin",
               "must be an http:// or https:// URL")
    _check(1 <= settings.port <= 65535, "port", "must be 1-65535")
    _check(1 <= settings.workers <= 64, "workers", "must be 1-64")
    _check(urlsplit(settings.redis_url).scheme in REDIS_SCHEMES, "redis_url",
           "must be a redis://, rediss://, unix://, redis+cluster:// or "
           "redis+sentinel:// URL")
    if settings.redis_url.startswith("redis+sentinel://"):
        _check(bool(urlsplit(settings.redis_url).path.strip("/")), "redis_url",
               "a redis+sentinel:// URL names its service: "
               "redis+sentinel://host:26379[,host:26379]/service[/db]")
    _check(settings.capacity >= 1, "capacity", "must be at least 1")
    _check(settings.api_wait_status in (200, 429, 503), "api_wait_status",
           "must be 429, 503 or 200")
    _check(1 <= settings.adaptive_interval_seconds <= 300, "adaptive_interval_seconds",
           "must be 1-300")
    _check(len(settings.timeline) <= _MAX_PLANNED, "timeline",
           f"at most {_MAX_PLANNED} steps")
    _check(len(settings.shop_name) <= 100, "shop_name", "at most 100 characters")
    _check_look(settings)
    for secret in settings.secret:
        _check(len(secret) >= _MIN_SECRET_LENGTH, "secret",
               f"each secret needs at least {_MIN_SECRET_LENGTH} characters")
    _check(settings.grace_seconds >= 6, "grace_seconds",
           "must be at least 6 (waiting pages poll every 2 seconds)")
    _check(settings.session_idle_seconds >= 1, "session_idle_seconds", "must be at least 1")
    _check(settings.session_first_idle_seconds >= 0, "session_first_idle_seconds",
           "must be 0 (off) or more")
    _check(settings.session_max_seconds >= settings.session_idle_seconds, "session_max_seconds",
           "must be at least session_idle_seconds")
    _check(settings.ticket_max_age_seconds >= settings.grace_seconds, "ticket_max_age_seconds",
           "must be at least grace_seconds")
    for pattern in (*settings.gated_paths, *settings.open_paths):
        _check(pattern.startswith("/"), "gated_paths" if pattern in settings.gated_paths
               else "open_paths", f"{pattern!r} must start with /")
    _check(len(settings.message) <= _MAX_MESSAGE_LENGTH, "message",
           f"at most {_MAX_MESSAGE_LENGTH} characters")
    for key in ("admin_token", "metrics_token"):
        for entry in getattr(settings, key):
            _check(len(entry.rpartition(":")[2]) >= _MIN_SECRET_LENGTH, key,
                   f"each token needs at least {_MIN_SECRET_LENGTH} characters")
    _check(settings.capture in ("auto", "on", "off"), "capture", "must be auto, on or off")
    try:
        parse_fields(settings.capture_fields)
    except ValueError as exc:
        raise ConfigError("capture_fields", str(exc)) from None
    _check(1 <= settings.breaker_window_seconds <= 300, "breaker_window_seconds",
           "must be 1-300")
    _check(0 < settings.breaker_failure_ratio <= 1, "breaker_failure_ratio",
           "must be above 0 and at most 1")
    if settings.origin_ca_file:
        try:
            tls_context(settings.origin_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("origin_ca_file",
                              f"cannot be read as PEM certificates: {exc}") from exc
    if settings.health_check_url:
        parts = urlsplit(settings.health_check_url)
        _check(parts.scheme in ("http", "https") and bool(parts.hostname),
               "health_check_url", "must be an http:// or https:// URL")
    _check(settings.redis_down in ("closed", "passes", "open"), "redis_down",
           "must be closed, passes or open")
    _check_notify(settings)
    for key in ("origin_max_connections", "max_request_body_bytes", "max_request_headers",
                "session_max_concurrent_requests", "max_event_streams",
                "notify_per_hour_per_visitor", "notify_per_hour_per_network",
                "session_max_websockets", "capture_rate_per_minute", "breaker_min_requests",
                "breaker_cooldown_seconds", "breaker_probes",
                "request_body_min_bytes_per_second"):
        _check(getattr(settings, key) >= 1, key, "must be at least 1")
    _check(settings.max_request_head_bytes >= 1024, "max_request_head_bytes",
           "must be at least 1024")
    for key in ("origin_slot_timeout_seconds", "request_head_timeout_seconds",
                "request_body_timeout_seconds", "origin_timeout_seconds",
                "origin_connect_timeout_seconds"):
        _check(getattr(settings, key) > 0, key, "must be positive")
    _check(0 <= settings.pow_difficulty <= 24, "pow_difficulty", "must be 0 (off) to 24")
    for key in ("new_places_per_minute_per_network", "records_per_minute_per_network"):
        _check(getattr(settings, key) >= 0, key, "must be 0 (no limit) or more")
    _check(0 < settings.network_share <= 1, "network_share", "must be above 0 and at most 1")



def _check_look(settings: Settings) -> None:
    """The shop's look: its folders exist; its stylesheet and logo are paths here."""
    for key in ("templates_dir", "locales_dir"):
        folder = getattr(settings, key)
        _check(not folder or Path(folder).is_dir(), key, f"{folder!r} is not a folder")
    for key in ("stylesheet", "logo"):
        path = getattr(settings, key)
        _check(not path or (path.startswith("/") and not path.startswith("//")
                            and "\\" not in path and len(path) <= 200
                            and all(32 < ord(c) < 127 for c in path)), key,
               "a path on this site, like /_wr/brand/shop.css (at most 200 characters)")


def _check_notify(settings: Settings) -> None:
    """Notify-me's delivery, and the public URL its links are built on."""
    if settings.smtp_url:
        _check(urlsplit(settings.smtp_url).scheme == "smtp" and bool(
            urlsplit(settings.smtp_url).hostname), "smtp_url", "must be smtp://host:port")
    if settings.notify_webhook_url:
        _check(urlsplit(settings.notify_webhook_url).scheme in ("http", "https"),
               "notify_webhook_url", "must be an http:// or https:// URL")
        _check(len(settings.notify_webhook_secret) >= _MIN_SECRET_LENGTH,
               "notify_webhook_secret",
               f"needs at least {_MIN_SECRET_LENGTH} characters with a webhook")
    _check(settings.notify_claim_seconds >= settings.grace_seconds, "notify_claim_seconds",
           "must be at least grace_seconds")
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        _check(parts.scheme in ("http", "https") and bool(parts.hostname)
               and settings.public_url.isascii() and parts.path in ("", "/")
               and not (parts.query or parts.fragment or parts.username), "public_url",
               "must be http(s)://host[:port] (a name in ASCII: punycode), with no path, "
               "query or user")
    elif settings.smtp_url or settings.notify_webhook_url:
        raise ConfigError("public_url", "is required with notify-me (smtp_url or "
                          "notify_webhook_url): the links it sends are built on it, "
                          "never on a visitor's Host header")


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)
