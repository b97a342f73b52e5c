"""Every setting, declared once: its type, bounds, default and description, in groups
that :class:`~waitingroom.settings.Settings` joins. A value is checked as it is read
(:mod:`waitingroom.setting_types`); checks across settings are in
:mod:`waitingroom.settings`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from waitingroom.setting_types import (
    AtLeastOne,
    CaptureForm,
    Flag,
    Folder,
    Paths,
    PemFile,
    PublicUrl,
    RedisUrl,
    RoomName,
    Seconds,
    Secrets,
    Share,
    SitePath,
    SmtpUrl,
    StatusCode,
    Timeline,
    Tokens,
    WebUrl,
    Whole,
)


class Group(BaseModel):
    """A group of settings: frozen, and a setting it does not know is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)


class Serving(Group):
    """The room, the shop behind it, where it listens and its Redis."""

    room: RoomName = Field("default", description=(
        "Room name: lowercase letters, digits and dashes; it names the Redis keys."))
    origin: WebUrl = Field("", description=(
        "Origin URL the standalone proxy forwards to (``serve`` only)."))
    host: str = Field("127.0.0.1", description=(
        "Address ``serve`` listens on (``0.0.0.0`` for every interface)."))
    port: Whole = Field(8000, ge=1, le=65535, description="Port ``serve`` listens on.")
    workers: Whole = Field(1, ge=1, le=64, description=(
        "Worker processes of ``serve`` (each with its own connections to Redis)."))
    redis_url: RedisUrl = Field(
        "redis://127.0.0.1:6379/0", description=(
            "One Redis (``redis://``, ``rediss://``, ``unix://``); a Redis Cluster given by "
            "any of its nodes (``redis+cluster://host:port``): each room lives on one shard; "
            "or a Sentinel-watched primary "
            "(``redis+sentinel://host:26379[,host:26379]/service[/db]``)."))
    redis_down: Literal["closed", "passes", "open"] = Field("closed", description=(
        "What gated paths do while Redis is unreachable: ``closed`` (the 503 retry page), "
        "``passes`` (holders of a genuine session pass go through; newcomers wait) or "
        "``open`` (everybody goes through: the origin takes its chances)."))
    capacity: AtLeastOne = Field(100, description=(
        "Concurrent sessions the order flow can serve; seeds the room's live value."))
    api_wait_status: StatusCode = Field(
        429, description=(
            "A script's gated call (fetch/XHR, JSON asked for) gets it while its caller "
            "waits, with ``Retry-After`` and the status JSON: 429, 503, or 200 (body-only "
            "clients)."))
    adaptive_interval_seconds: Whole = Field(5, ge=1, le=300, description=(
        "How often an adaptive room judges the origin's answers and moves its cap."))
    secret: Secrets = Field((), repr=False, description=(
        "Signing secrets, newest first: the first signs, all verify (key rotation)."))
    message: str = Field("", max_length=500, description=(
        "Operator message shown to waiting visitors; seeds the room's live value."))
    timeline: Timeline = Field((), max_length=100, description=(
        "Changes planned for the room, each applied once by one process when due (as by "
        "``waitingroom admin plan``), and never again after a restart: in the file, "
        "``[[timeline]]`` tables of an ``at`` (ISO 8601 with its zone) and the live "
        "settings (as ``POST /_wr/admin/room`` takes them); in the environment, the same "
        "as JSON. Held as (epoch ms, the settings as JSON)."))


class Sessions(Group):
    """How long places and sessions last, and which paths are the order flow."""

    grace_seconds: Whole = Field(60, ge=6, description=(
        "How long a waiting visitor may go unseen before the place is released (at least "
        "6: waiting pages poll every 2 seconds). A slot given to a visitor is held a "
        "twelfth of it (2 to 10 s) for the visitor to come; one who comes later still gets "
        "the first free slot, within the grace."))
    session_idle_seconds: AtLeastOne = Field(300, description=(
        "A session with no request for this long ends, and its slot goes to the next."))
    session_first_idle_seconds: Whole = Field(10, ge=0, description=(
        "Idle time of a session of one request only (0: ``session_idle_seconds``); the "
        "page's ``leave.js`` makes it one like any within a second. Ended so, it keeps the "
        "first free slot for the grace."))
    session_max_seconds: Whole = Field(1800, description=(
        "A session ends this long after it began, however busy (at least "
        "``session_idle_seconds``)."))
    session_renewal: Flag = Field(True, description=(
        "False: fixed-length sessions, each ending ``session_max_seconds`` after its first "
        "request, busy or idle (no idle timeout; the origin's release still ends it)."))
    leave_beacon: Flag = Field(True, description=(
        "Add ``leave.js`` to the shop's pages as admitted shoppers load them (gzip, "
        "streams and the page's own CSP handled): a closed tab frees its slot in seconds."))
    ticket_max_age_seconds: Whole = Field(86_400, description=(
        "Queue tickets older than this are void (a fresh place at the back); at least "
        "``grace_seconds``."))
    gated_paths: Paths = Field((), description=(
        "Glob patterns of the order flow; empty means every path not open."))
    open_paths: Paths = Field((), description=(
        "Glob patterns that always pass (login, static assets, ...)."))
    case_insensitive_paths: Flag = Field(True, description=(
        "Gated paths match without regard to case (``/CHECKOUT`` is gated like "
        "``/checkout``), for the many origins that ignore it; open paths are always "
        "exact."))


class Look(Group):
    """The shop's name, words and look on the visitor's pages."""

    shop_name: str = Field("", max_length=100, description=(
        "The shop's name, shown on the queue page and in its title (empty: none)."))
    templates_dir: Folder = Field("", description=(
        "A folder of the shop's own page templates (Jinja2, named as ours: ``base.html`` "
        "frames every visitor page) and, in ``static/``, files served under "
        "``/_wr/brand/``; empty: ours. Escaping is always on; see docs/branding.md."))
    locales_dir: Folder = Field("", description=(
        "A folder of gettext catalogs, ``<language code>.po``, adding languages to the "
        "visitor's pages or replacing our words in one; empty: ours (en, fr, de)."))
    stylesheet: SitePath = Field("", description=(
        "A path on this site of a stylesheet linked after ours on every visitor page "
        "(e.g. ``/_wr/brand/shop.css``); empty: none."))
    logo: SitePath = Field("", description=(
        "A path on this site of the shop's logo, shown atop every visitor page (its "
        "alternative text is ``shop_name``); empty: none."))


class Proxy(Group):
    """What ``serve`` accepts from visitors and asks of the origin."""

    origin_timeout_seconds: Seconds = Field(30.0, description=(
        "How long ``serve`` waits for the origin's answer (504 past it)."))
    origin_connect_timeout_seconds: Seconds = Field(5.0, description=(
        "How long ``serve`` waits to connect to the origin (502 if it fails)."))
    origin_max_connections: AtLeastOne = Field(1000, description=(
        "Connections the proxy opens to the origin at most, per process."))
    origin_slot_timeout_seconds: Seconds = Field(5.0, description=(
        "How long a request waits for a free origin connection before a 503."))
    origin_ca_file: PemFile = Field("", description=(
        "PEM file of certificate authorities trusted, beside the system's, for an https "
        "origin and the health check URL (an internal CA)."))
    max_request_body_bytes: AtLeastOne = Field(10 * 1024 * 1024, description=(
        "Largest request body the proxy forwards (413 past it)."))
    max_request_head_bytes: Whole = Field(32 * 1024, ge=1024, description=(
        "Largest request line and headers ``serve`` reads (431 past it; a URL alone over "
        "8 KiB gets 414)."))
    max_request_headers: AtLeastOne = Field(100, description=(
        "Most request header lines ``serve`` reads (431 past it)."))
    request_head_timeout_seconds: Seconds = Field(10.0, description=(
        "A request head must be whole this long after one is due (the connection opened, "
        "or the last answer ended), or ``serve`` answers 408 and closes the connection."))
    request_body_timeout_seconds: Seconds = Field(20.0, description=(
        "A request body may take this long, plus a second per "
        "``request_body_min_bytes_per_second`` it brings, before ``serve`` cuts it off."))
    request_body_min_bytes_per_second: AtLeastOne = Field(500, description=(
        "The pace a request body must keep after ``request_body_timeout_seconds``."))
    session_max_concurrent_requests: AtLeastOne = Field(64, description=(
        "Requests one admitted session may have at the app or origin at once (429 past "
        "it): one pass cannot take the connections everyone else needs."))
    session_max_websockets: AtLeastOne = Field(8, description=(
        "WebSockets one admitted session may hold open at once (closed, 1008, past it)."))
    max_event_streams: AtLeastOne = Field(10_000, description=(
        "Live ``/_wr/events`` streams per process; past it, visitors poll (503)."))
    forwarded_allow_ips: str = Field("", description=(
        "Addresses of a load balancer whose X-Forwarded-For/Proto to trust (comma-"
        "separated, ``*`` for any); empty trusts none, so clients cannot spoof them."))


class Capture(Group):
    """Data-capture mode and the circuit breaker that turns it on."""

    capture: Literal["auto", "on", "off"] = Field("auto", description=(
        "Data-capture mode: ``auto`` (when the breaker opens), ``on`` or ``off`` (forced). "
        "Seeds the room's live value."))
    capture_fields: CaptureForm = Field(
        "name:text:required,email:email:required,phone:phone,product:text:required,"
        "store:text,consent:consent:required", description=(
            "The capture form: comma-separated ``name:kind[:required][:max length]``; kinds "
            "``text``, ``email``, ``phone``, ``consent``, ``choice(a|b|c)``."))
    interest_fields: CaptureForm = Field(
        "name:text,email:email:required,phone:phone,consent:consent:required", description=(
            "The 'hear if more comes in' form (``/_wr/interest``), as ``capture_fields``: "
            "contact details only, as nothing is ordered."))
    capture_spool_dir: str = Field("waitingroom-spool", description=(
        "Local folder for captures taken while Redis is unreachable (fsync'd)."))
    capture_rate_per_minute: AtLeastOne = Field(5, description=(
        "Capture submissions one visitor may make per minute."))
    breaker_window_seconds: Whole = Field(10, ge=1, le=300, description=(
        "The sliding window of order-flow outcomes the breaker judges."))
    breaker_failure_ratio: Share = Field(0.5, description=(
        "The share of failures in the window that opens the breaker (capture mode)."))
    breaker_min_requests: AtLeastOne = Field(5, description=(
        "Fewer order-flow requests than this in the window never open the breaker."))
    breaker_cooldown_seconds: AtLeastOne = Field(15, description=(
        "How long the breaker stays open before letting probe requests through."))
    breaker_probes: AtLeastOne = Field(3, description=(
        "Successful probes in a row that close the breaker again."))
    health_check_url: WebUrl = Field("", description=(
        "Optional origin URL the half-open breaker probes itself (GET; < 500 is healthy), "
        "so it closes even when no admitted visitor happens to make a request."))


class Access(Group):
    """Who may do what: operators, scrapers, networks, proof of work."""

    admin_token: Tokens = Field((), repr=False, description=(
        "Admin API bearer tokens, ``name:token`` (the name goes in the audit log) or a "
        "bare token (audited as ``admin``); comma-separated. None configured: no admin "
        "API."))
    metrics_token: Tokens = Field((), repr=False, description=(
        "Bearer tokens that may read ``/_wr/metrics`` and nothing else (a scraper's)."))
    new_places_per_minute_per_network: Whole = Field(30, ge=0, description=(
        "New places one client network (IPv4 /24, IPv6 /48) may always take a minute in "
        "each process; past the floors, ``network_share`` of those within them. 0: no "
        "limit."))
    records_per_minute_per_network: Whole = Field(20, ge=0, description=(
        "The same for details left (capture and interest forms). 0 = no limit."))
    network_share: Share = Field(0.1, description=(
        "What networks may take past their floors, as a share of what was taken within "
        "them in the last minute: the most a bot farm adds to the line past its floors."))
    pow_difficulty: Whole = Field(0, ge=0, le=24, description=(
        "Proof of work before a new place in line, in leading zero bits of SHA-256 (16 is "
        "about a second on a phone); 0 = none. Needs JavaScript (or an API client that "
        "solves it); see docs/security.md."))


class Notify(Group):
    """Notify me: the email or webhook that says when a visitor's turn comes."""

    smtp_url: SmtpUrl = Field("", repr=False, description=(
        "Notify me by email: ``smtp://host:port`` (``smtp://user:password@host:587`` uses "
        "STARTTLS and logs in). Empty: no email."))
    notify_from: str = Field("waitingroom@localhost", description=(
        "The sender of notify-me emails."))
    notify_webhook_url: WebUrl = Field("", description=(
        "Notify me by webhook (e.g. an SMS gateway): JSON POSTed with an HMAC signature."))
    notify_webhook_secret: str = Field("", repr=False, description=(
        "The notify-me webhook's HMAC key, at least 16 characters."))
    notify_claim_seconds: Whole = Field(900, description=(
        "How long a notified visitor has to come back once it is their turn (at least "
        "``grace_seconds``)."))
    notify_per_hour_per_visitor: AtLeastOne = Field(5, description=(
        "Notify-me requests one place in line may make per hour (per process)."))
    notify_per_hour_per_network: AtLeastOne = Field(30, description=(
        "Notify-me requests one client network may make per hour (per process)."))
    public_url: PublicUrl = Field("", description=(
        "The site's address as visitors reach it (``https://shop.example``), for links "
        "sent or shown for elsewhere (notify-me, another device). Required with "
        "notify-me; without it, a link shown on a page takes the request's own ``Host``."))
