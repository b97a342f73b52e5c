"""One room's gate: who waits, who is admitted, and the room's own ``/_wr/`` answers.

The middleware routes each request to a room's :class:`RoomGate` by path (or, for
the reserved endpoints, by the ``room`` query parameter). A gated request costs at most
one Redis round trip (none for a waiter this process's copy of the line shows, nor
for a session checked within the last second).
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import segno
from redis.exceptions import RedisError
from starlette.requests import cookie_parser
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waitingroom import pages
from waitingroom._asgi import (
    NO_STORE,
    RELEASE_HEADER,
    SESSION_HEADER,
    BadRequest,
    BodyTooLarge,
    form_fields,
    html_response,
    json_response,
    query_params,
    read_body,
    safe_location,
    same_origin_path,
    send_json,
    wait_for_disconnect,
)
from waitingroom._breaker import BreakerClient
from waitingroom._capture_desk import CaptureDesk
from waitingroom._eta import AdmissionRate, WaitTimes
from waitingroom._history import History
from waitingroom._i18n import LANGUAGE_COOKIE, LANGUAGES, pick
from waitingroom._limits import ProcessLimits, RateLimit
from waitingroom._line import LineView, LineWatch
from waitingroom._logging import REQUEST_ID_HEADER
from waitingroom._notify import Notice, Notifier
from waitingroom._paths import RESERVED_PREFIX
from waitingroom._pow import solves
from waitingroom.capture import e164, parse_fields, validate
from waitingroom.engine import BreakerPolicy, Engine, RoomConfig, Visit, VisitState
from waitingroom.settings import Settings
from waitingroom.status import State, Status, poll_interval
from waitingroom.tickets import (
    CHALLENGE_MAX_AGE,
    CLAIM_MAX_AGE,
    RESUME_MAX_AGE,
    Tickets,
    new_visitor_id,
)

logger = logging.getLogger("waitingroom")

_CONFIG_TTL_SECONDS = 1.0
_SESSION_CHECK_SECONDS = 1.0  # an admitted visitor's session is checked in Redis this often
_SESSIONS_REMEMBERED = 100_000
_UNRELEASED_KEPT = 100_000  # past this, a missed release waits for the idle timeout
_EVENTS_MAX_SECONDS = 300  # an SSE stream ends after this; EventSource reconnects
LEAVE_LINGER_SECONDS = 10
"""After ``POST /_wr/leave`` (a shopper's page went away), a session ends this long
from now unless the shopper's next page says ``POST /_wr/here`` (or makes a request)."""
_SMALL_FORM_LIMIT = 1024  # /_wr/pow and /_wr/notify take a few short fields
_NOTIFY_FIELDS = parse_fields("email:email,phone:phone")


@dataclass(slots=True)
class Request:
    """The parts of a request the waiting room reads, parsed once."""

    scope: Scope
    cookies: dict[str, str]
    wants_json: bool
    secure: bool
    incoming_id: bytes | None = None
    """The caller's X-Request-Id header, if any."""
    request_id: str = ""
    """This request's id (the caller's if sane); empty for the room's own endpoints."""
    accept_language: str = ""

    @classmethod
    def parse(cls, scope: Scope, incoming_id: bytes | None = None, rid: str = "") -> Request:
        """Read the cookies and the ``Accept`` headers of ``scope``."""
        cookie = accept = accept_language = ""
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"accept-language":
                accept_language = value.decode("latin-1")
        wants_json = "application/json" in accept and "text/html" not in accept
        return cls(scope, cookie_parser(cookie) if cookie else {}, wants_json,
                   scope.get("scheme") in ("https", "wss"), incoming_id, rid,
                   accept_language)

    def chosen_language(self) -> str | None:
        """A language picked with the switcher just now (``?lang=``), if any."""
        query: bytes = self.scope["query_string"]
        if b"lang=" not in query:
            return None
        lang = dict(parse_qsl(query.decode("latin-1"))).get("lang")
        return lang if lang in LANGUAGES else None

    def language(self) -> str:
        """The language to answer this visitor's pages in."""
        return pick(self.chosen_language() or self.cookies.get(LANGUAGE_COOKIE),
                    self.accept_language)

    def here(self) -> str:
        """This page's path and query, less any ``lang`` (for the language switcher)."""
        query = [(k, v) for k, v in parse_qsl(self.scope["query_string"].decode("latin-1"))
                 if k != "lang"]
        path: str = self.scope["path"]
        return path + ("?" + urlencode(query) if query else "")

    def forwarded(self, *extra: tuple[bytes, bytes]) -> Scope:
        """The scope for the origin: it carries the request id and ``extra`` headers,
        copied once and only when something is really forwarded."""
        return forwarded(self.scope, self.incoming_id, self.request_id, *extra)


@dataclass(slots=True)
class _Standing:
    """A visitor's standing after one engine call, and the cookies to set for it."""

    visitor_id: str
    admitted: bool
    visit: Visit | None = None
    """The engine's answer, or the process's copy of the line's (waiting visitors)."""
    set_cookies: list[bytes] = field(default_factory=list)


class TooManyNewPlaces(Exception):
    """The client's network took its share of new places for now."""


class ChallengeRequired(Exception):
    """A new place in ``gate``'s room needs proof of work first (``pow_difficulty``)."""

    def __init__(self, gate: RoomGate) -> None:
        super().__init__(gate.room)
        self.gate = gate


class RoomGate:
    """Gate one room's order flow: FCFS admission up to the room's live capacity.

    ``capacity``, ``message`` and ``capture`` seed the room's live config the first
    time any process sees the room; after that Redis holds it. ``on_tick`` runs every
    half second beside the breaker's report (the dashboard's sampling).
    """

    def __init__(
        self, app: ASGIApp, *, room: str, settings: Settings, engine: Engine,
        tickets: Tickets, limits: ProcessLimits, capacity: int, message: str = "",
        capture: str = "auto", on_tick: Callable[[RoomGate], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.room = room
        self.settings = settings
        self.engine = engine
        self.tickets = tickets
        self.limits = limits
        self.rate = AdmissionRate()
        self.wait_times = WaitTimes()
        self.history = History()
        self._seed = (capacity, message, capture)
        self._on_tick = on_tick
        self._ticket_cookie = f"wr_ticket_{room}"
        self._pass_cookie = f"wr_pass_{room}"
        self._config: RoomConfig | None = None
        self._config_expires = 0.0
        self._config_refresh: asyncio.Task[None] | None = None
        self.doorbell = engine.announcements.doorbell(room)
        self.line = LineWatch(engine, room, on_look=self._looked)
        # Sessions Redis said were alive, until when this process takes that as still so.
        self._sessions: dict[str, float] = {}
        self._unreleased: set[str] = set()  # sessions the origin ended, not yet in Redis
        self._used: set[str] = set()  # sessions used since Redis last kept them alive
        self.desk = CaptureDesk(settings=settings, room=room, engine=engine, tickets=tickets,
                                fields=parse_fields(settings.capture_fields))
        self.breaker = BreakerClient(
            engine, room,
            BreakerPolicy(settings.breaker_window_seconds, settings.breaker_failure_ratio,
                          settings.breaker_min_requests, settings.breaker_cooldown_seconds,
                          settings.breaker_probes),
            on_tick=self._tick, health_check_url=settings.health_check_url,
            ca_file=settings.origin_ca_file)
        self.notifier = Notifier(settings)
        self._sending: set[asyncio.Task[None]] = set()
        self.reserved: dict[str, Callable[[Request, Receive, Send], Awaitable[None]]] = {
            "/_wr/status-page": self._status_page,
            "/_wr/status-page.json": self._status_page,
            "/_wr/status": self._status,
            "/_wr/events": self._events,
            "/_wr/capture": self._capture,
            "/_wr/invite": self._invite,
            "/_wr/pow": self._proof_of_work,
            "/_wr/resume-link": self._resume_link,
            "/_wr/resume": self._resume,
            "/_wr/qr.svg": self._qr,
            "/_wr/notify": self._notify,
            "/_wr/claim": self._claim,
            "/_wr/leave": self._leave,
            "/_wr/here": self._here,
        }
        """The room's own endpoints under ``/_wr/``, by path."""

    # -- the gate ------------------------------------------------------------------

    async def __call__(self, request: Request, receive: Receive, send: Send) -> None:
        """Answer a request for a path this room gates."""
        try:
            config = await self.room_config()
            if config.mode == "open":
                await self.app(request.forwarded(), receive, send)
                return
            standing = await self._stand(request, join=True)
        except RedisError as exc:
            logger.warning("redis unavailable while gating %s: %s", request.scope["path"], exc)
            await self.without_redis(request, receive, send)
            return
        except TooManyNewPlaces:
            await too_many_new_places(request, self.limits.new_places, receive, send)
            return
        except ChallengeRequired:
            await self.challenge(request, receive, send)
            return
        if self.capturing(config) and not (standing.admitted and await self._probe(config)):
            if request.scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1013})
                return
            response = self.desk.form(standing.visitor_id, self._status_of(standing, config),
                                      wants_json=request.wants_json, lang=request.language())
            await _with_cookies(response, standing.set_cookies)(request.scope, receive, send)
        elif standing.admitted:
            await self._forward(request, receive, send, standing)
        elif request.scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            status = self._status_of(standing, config)
            headers = {**NO_STORE, "retry-after": str(status.poll_after_seconds)}
            if request.wants_json:
                response = json_response(status.to_json(), headers=headers)
            elif status.state == "closed":
                response = html_response(pages.closed_page(status, request.language()))
            elif status.state == "moved":
                response = html_response(pages.moved_page(request.language()))
            else:
                body = pages.queue_page(status, grace_seconds=self.settings.grace_seconds,
                                        lang=request.language(), here=request.here(),
                                        notify=self.notifier.enabled)
                response = html_response(body, headers=headers)
            standing.set_cookies += _language_cookie(request)
            await _with_cookies(response, standing.set_cookies)(request.scope, receive, send)

    async def _stand(self, request: Request, *, join: bool, claim: bool = True) -> _Standing:
        """Work out where the visitor stands: at most one Redis round trip, none for a
        waiter this process's copy of the line shows, nor for a session checked within
        the last second. ``claim``: the request goes on to the origin if admitted (else
        the visitor is only told: see :meth:`Engine.visit`)."""
        session_id = self.tickets.read_pass(request.cookies.get(self._pass_cookie), self.room)
        if session_id is not None:
            if await self._session_alive(session_id):
                return _Standing(session_id, admitted=True)
            # The session ended (idle, maximum, released): back of the line, same id.
            standing = await self._visit(request, session_id, join=join, fresh=True,
                                         claim=claim)
            if not standing.admitted:  # else a new pass already replaces the old one
                standing.set_cookies.append(self._cookie(request, self._pass_cookie, "", 0))
            return standing
        ticket = request.cookies.get(self._ticket_cookie)
        place = self.tickets.read_place(ticket, self.room)
        if place is not None:
            standing = await self._waiting(request, *place, join=join, claim=claim)
            if standing.admitted:
                joined = self.tickets.ticket_issued_at(ticket)
                if joined is not None:
                    self.wait_times.observe(max(0.0, time.time() - joined))
            return standing
        # No ticket, or a forged, expired or foreign one: a fresh place at the back.
        if self.settings.pow_difficulty:
            raise ChallengeRequired(self)
        return await self._new_place(request, join=join, claim=claim)

    async def _new_place(self, request: Request, *, join: bool, claim: bool) -> _Standing:
        if not self.limits.new_places.allow_network(request.scope.get("client")):
            raise TooManyNewPlaces
        return await self._visit(request, new_visitor_id(), join=join, fresh=True, new=join,
                                 claim=claim)

    async def _waiting(
        self, request: Request, visitor_id: str, number: int, *, join: bool,
        claim: bool = True,
    ) -> _Standing:
        """Where a ticket holder stands: from this process's copy of the line if it
        shows the place (and no admission since passed it), else from Redis."""
        position = (self.line.position(number) if number > self.doorbell.head else None)
        if position is None:
            return await self._visit(request, visitor_id, number, join=join, claim=claim)
        view = self.line.view
        assert view is not None  # a position came from it
        return _Standing(visitor_id, False, Visit(VisitState.WAITING, position,
                                                  view.admitted_total, view.server_ms, number))

    async def _visit(
        self, request: Request, visitor_id: str, number: int = 0, *, join: bool,
        fresh: bool = False, new: bool = False, claim: bool = True,
    ) -> _Standing:
        """Ask Redis where the visitor holding place ``number`` (0: none, or in a lane)
        stands; a ticket is set for a ``fresh`` visitor id or a new place in line.
        ``new``, ``claim``: see :meth:`Engine.visit`."""
        visit = await self.engine.visit(self.room, visitor_id, number=number, join=join,
                                        new=new, claim=claim)
        self.rate.observe(visit.server_ms, visit.admitted_total)
        standing = _Standing(visitor_id, visit.state is VisitState.ADMITTED, visit)
        if standing.admitted and claim:
            self._remember_session(visitor_id)
            standing.set_cookies += [self._pass_for(request, visitor_id),
                                     self._cookie(request, self._ticket_cookie, "", 0)]
        elif visit.state in (VisitState.WAITING, VisitState.PREQUEUE) and (
                fresh or visit.number != number):
            standing.set_cookies.append(self._ticket_for(request, visitor_id, visit.number))
        return standing

    async def _session_alive(self, session_id: str) -> bool:
        """Is the session alive? Asked of Redis (which keeps it alive) at most once a
        second per session and process; a session ended meanwhile elsewhere (released
        on another process, or expired) may so get at most a second more."""
        left = self._sessions.get(session_id, 0.0) - time.monotonic()
        if left > 0:
            # Used again more than half a check ago: kept alive in Redis by the next tick
            # (about one Redis touch a second per busy session and process).
            if left < _SESSION_CHECK_SECONDS / 2 and len(self._used) < _SESSIONS_REMEMBERED:
                self._used.add(session_id)
            return True
        self._sessions.pop(session_id, None)
        self._used.discard(session_id)
        if not await self.engine.touch(self.room, session_id):
            return False
        self._remember_session(session_id)
        return True

    def _remember_session(self, session_id: str) -> None:
        if len(self._sessions) >= _SESSIONS_REMEMBERED:
            self._sessions.clear()  # they are asked of Redis again, nothing is lost
        self._sessions[session_id] = time.monotonic() + _SESSION_CHECK_SECONDS

    async def _forward(
        self, request: Request, receive: Receive, send: Send, standing: _Standing
    ) -> None:
        """Pass an admitted request on, if the session has fewer than its limit in
        flight; end the session if the origin says so."""
        session_id = standing.visitor_id
        in_flight = self.limits.session_requests
        if not in_flight.take(session_id):
            await _busy(request, 429, receive, send)
            return
        scope = request.forwarded((SESSION_HEADER, session_id.encode()))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.breaker.record(message["status"] < 500)
                headers = []  # one pass: the origin's headers less the release signal
                release = False
                for name, value in message.get("headers", ()):
                    if name.lower() == RELEASE_HEADER:
                        release = value.strip() == b"1"
                    else:
                        headers.append((name, value))
                if release:
                    self._sessions.pop(standing.visitor_id, None)
                    await self._release(standing.visitor_id)
                    standing.set_cookies.append(self._cookie(request, self._pass_cookie, "", 0))
                headers += [(b"set-cookie", c) for c in standing.set_cookies]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self.breaker.record(False)
            raise
        finally:
            in_flight.give(session_id)

    async def without_redis(self, request: Request, receive: Receive, send: Send) -> None:
        """Gate without Redis, as ``redis_down`` says: nobody, pass holders, everybody."""
        policy = self.settings.redis_down
        session_id = self.tickets.read_pass(request.cookies.get(self._pass_cookie), self.room)
        if policy == "passes" and session_id is not None:
            # Admitted within capacity when the pass was issued; its session may have
            # ended since, so this can exceed the cap by those whose sessions ended.
            await self.app(request.forwarded((SESSION_HEADER, session_id.encode())),
                           receive, send)
        elif policy == "open":
            await self.app(request.forwarded(), receive, send)
        else:
            await unavailable(request, receive, send)

    async def _release(self, session_id: str) -> None:
        try:
            await self.engine.release(self.room, session_id)
            self.line.stale()  # the next in line was let in
        except RedisError as exc:
            # Sent again every half second until Redis takes it (releases are
            # idempotent); the visitor is not failed.
            logger.warning("could not release session %s yet: %s", session_id, exc)
            if len(self._unreleased) < _UNRELEASED_KEPT:
                self._unreleased.add(session_id)

    async def _touch_used(self) -> None:
        """Keep alive in Redis the sessions used since it last heard of them: a
        request answered from this process's memory still counts as use."""
        used, self._used = self._used, set()
        try:
            alive = await asyncio.gather(*(self.engine.touch(self.room, s) for s in used))
        except RedisError:
            self._used |= used  # sent again next tick
            raise
        for session_id, is_alive in zip(used, alive, strict=True):
            if is_alive:
                self._remember_session(session_id)
            else:
                self._sessions.pop(session_id, None)

    def _looked(self, view: LineView) -> None:
        """Every look at the line: the admission rate, and streams whose place the
        head has passed are woken (an announcement missed is so made up for)."""
        self.rate.observe(view.server_ms, view.admitted_total)
        self.doorbell.passed(view.head)

    async def _release_again(self) -> None:
        """Send the releases Redis missed (it was down or out of reach)."""
        while self._unreleased:
            session_id = next(iter(self._unreleased))
            await self.engine.release(self.room, session_id)
            self._unreleased.discard(session_id)
            self.line.stale()

    # -- the room's own endpoints --------------------------------------------------

    async def _status(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/status``: the caller's standing as JSON (joins if holding none)."""
        config = await self.room_config()
        if config.mode == "open":  # nobody waits: asking takes no place
            status, cookies = Status(self.room, "open", message=config.message or None), []
        else:
            standing = await self._stand(request, join=True, claim=False)
            status, cookies = self._status_of(standing, config), standing.set_cookies
        await send_json(send, status.to_json(), cookies)

    async def _events(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/events``: the caller's status as Server-Sent Events until admitted
        (a 503 past the process's limit on live streams: the page polls instead)."""
        streams = self.limits.event_streams
        if not streams.take():
            await _busy(request, 503, receive, send)
            return
        try:
            await self._stream_events(request, receive, send)
        finally:
            streams.give()

    async def _stream_events(self, request: Request, receive: Receive, send: Send) -> None:
        config = await self.room_config()
        standing = await self._stand(request, join=True, claim=False)
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store"),
                   (b"x-accel-buffering", b"no"),
                   *((b"set-cookie", c) for c in standing.set_cookies)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        number = standing.visit.number if standing.visit else 0
        disconnected = asyncio.ensure_future(wait_for_disconnect(receive))
        deadline = time.monotonic() + _EVENTS_MAX_SECONDS
        last = b""
        try:
            with self.doorbell.waiting(standing.visitor_id, number) as bell:
                while True:
                    status = self._status_of(standing, config)
                    payload = status.to_json()
                    body = b"data: " + payload + b"\n\n" if payload != last else b":\n\n"
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    last = payload
                    if status.state in ("admitted", "open", "capture", "closed", "moved") or (
                            time.monotonic() > deadline):
                        break
                    # Asked again at the advised interval (which keeps the place), or at
                    # once when the doorbell rings: the visitor was let in.
                    rung = asyncio.ensure_future(bell.wait())
                    done, _ = await asyncio.wait({disconnected, rung},
                                                 timeout=status.poll_after_seconds,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    rung.cancel()
                    if disconnected in done:
                        return
                    bell.clear()
                    try:
                        config = await self.room_config()
                        standing = await self._waiting(request, standing.visitor_id, number,
                                                       join=True, claim=False)
                    except RedisError:
                        logger.warning("redis unavailable during /_wr/events; retrying")
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            disconnected.cancel()

    async def _leave(self, request: Request, receive: Receive, send: Send) -> None:
        """``POST /_wr/leave`` (``navigator.sendBeacon`` on ``pagehide``, from
        ``/_wr/static/leave.js``): the shopper's page went away. The session ends
        :data:`LEAVE_LINGER_SECONDS` from now unless the shopper goes on."""
        await self._session_beacon(request, receive, send, leaving=True)

    async def _here(self, request: Request, receive: Receive, send: Send) -> None:
        """``POST /_wr/here`` (on ``pageshow``, from ``/_wr/static/leave.js``): the
        shopper's next page is showing, so the session goes on (an earlier leave is
        undone)."""
        await self._session_beacon(request, receive, send, leaving=False)

    async def _session_beacon(
        self, request: Request, receive: Receive, send: Send, *, leaving: bool
    ) -> None:
        session_id = self.tickets.read_pass(request.cookies.get(self._pass_cookie), self.room)
        if request.scope["method"] != "POST":
            answer = json_response({"error": "not found"}, 404)
        elif session_id is None:
            answer = json_response({"error": "no session"}, 404)
        else:
            self._sessions.pop(session_id, None)
            self._used.discard(session_id)
            if leaving:
                await self.engine.release(self.room, session_id,
                                          linger_seconds=LEAVE_LINGER_SECONDS)
            else:
                await self._session_alive(session_id)
            answer = Response(b"", 204, headers=NO_STORE)
        await answer(request.scope, receive, send)

    async def _capture(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/capture``: the form; ``POST``: a submission (form or JSON)."""
        method = request.scope["method"]
        config = await self.room_config()
        if method == "POST":
            status = Status(self.room, "capture", message=config.message or None)
            visitor, number = self._cookie_place(request)
            response = await self.desk.submit(visitor, status,
                                              dict(request.scope["headers"]), receive,
                                              wants_json=request.wants_json,
                                              lang=request.language(), number=number)
        elif method in ("GET", "HEAD"):
            standing = await self._stand(request, join=True)
            response = _with_cookies(
                self.desk.form(standing.visitor_id, self._status_of(standing, config),
                               wants_json=request.wants_json, lang=request.language()),
                standing.set_cookies)
        else:
            response = Response(b"", 405, headers={"allow": "GET, HEAD, POST"})
        await response(request.scope, receive, send)

    async def _status_page(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/status-page`` (HTML, works without JavaScript) and its JSON twin:
        the room's state in words and the operator's message. Cacheable for 5 s."""
        config = await self.room_config()
        if config.mode in ("open", "closed"):
            state = config.mode
        elif self.capturing(config):
            state = "capture"
        elif config.start_at_ms > time.time() * 1000:
            state = "scheduled"
        else:
            state = "paused" if config.paused else "queueing"
        headers = {"cache-control": "public, max-age=5"}
        if request.scope["path"].endswith(".json"):
            body = {"room": self.room, "state": state, "state_text": pages.STATE_WORDS[state],
                    "message": config.message or None,
                    "message_at_ms": config.message_at_ms or None}
            response = json_response(body, headers=headers)
        else:
            remember = _language_cookie(request)
            # Shared caches keep one copy per language; a page that sets the visitor's
            # language cookie is theirs alone.
            headers = ({**NO_STORE} if remember else
                       {**headers, "vary": "Accept-Language, Cookie"})
            response = html_response(
                pages.status_page(state, config.message, config.message_at_ms,
                                  request.language(), request.here()), headers=headers)
            response.raw_headers += [(b"set-cookie", c) for c in remember]
        await response(request.scope, receive, send)

    async def _invite(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/invite?t=TOKEN&to=/path``: an invite link (staff, VIPs). The holder
        goes to the priority lane, served before the queue and never over capacity."""
        query = query_params(request.scope)
        invite_id = self.tickets.read_invite(query.get("t"), self.room)
        target = _same_site(query.get("to"))
        visitor_id, number = self._cookie_place(request)
        visitor_id = visitor_id or new_visitor_id()
        await self.room_config()
        visit = (await self.engine.redeem_invite(self.room, invite_id, visitor_id,
                                                 number=number)
                 if invite_id else None)
        if visit is None:
            await html_response(pages.invite_refused_page(), 403)(request.scope, receive, send)
            return
        response = Response(b"", 303, headers={**NO_STORE, "location": target})
        cookie = (self._pass_for(request, visitor_id) if visit.state is VisitState.ADMITTED
                  else self._ticket_for(request, visitor_id))
        await _with_cookies(response, [cookie])(request.scope, receive, send)

    async def challenge(self, request: Request, receive: Receive, send: Send) -> None:
        """Answer a newcomer with a proof-of-work challenge instead of a place."""
        token = self.tickets.issue_challenge(self.room, new_visitor_id())
        difficulty = self.settings.pow_difficulty
        if request.wants_json or request.scope["path"].startswith(RESERVED_PREFIX):
            response = json_response(
                {"error": "proof of work required", "challenge": token,
                 "difficulty": difficulty,
                 "solve": "POST /_wr/pow with challenge and nonce, where SHA-256 of "
                          "'challenge:nonce' starts with difficulty zero bits"}, 403)
        else:
            response = html_response(pages.challenge_page(self.room, token, difficulty))
        await response(request.scope, receive, send)

    async def _proof_of_work(self, request: Request, receive: Receive, send: Send) -> None:
        """``POST /_wr/pow``: a solved challenge (form or JSON) buys one new place."""
        if request.scope["method"] != "POST":
            await json_response({"error": "method not allowed"}, 405)(
                request.scope, receive, send)
            return
        fields = await _small_form(receive)
        if fields is None:
            await json_response({"error": "body too large"}, 413)(request.scope, receive, send)
            return
        token, nonce = fields.get("challenge", ""), fields.get("nonce", "")
        challenge_id = self.tickets.read_challenge(token, self.room)
        if (challenge_id is None or not solves(token, nonce, self.settings.pow_difficulty)
                or not await self.engine.spend(self.room, challenge_id,
                                               ttl_seconds=CHALLENGE_MAX_AGE)):
            await json_response({"error": "not a fresh, solved challenge"}, 403)(
                request.scope, receive, send)
            return
        config = await self.room_config()
        standing = await self._new_place(request, join=True, claim=False)
        await send_json(send, self._status_of(standing, config).to_json(),
                        standing.set_cookies)

    async def _resume_link(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/resume-link?to=/path``: a link (and QR code) that moves the caller's
        place to another device; JSON ``{"url", "expires_in_seconds"}`` for apps."""
        place = self.tickets.read_place(request.cookies.get(self._ticket_cookie), self.room)
        if place is None:
            await json_response({"error": "no place in line to move"}, 404)(
                request.scope, receive, send)
            return
        query = query_params(request.scope)
        link = urlencode({"room": self.room, "t": self.tickets.issue_resume(self.room, *place),
                          "to": _same_site(query.get("to"))})
        if request.wants_json:
            response = json_response({"url": "/_wr/resume?" + link,
                                      "expires_in_seconds": RESUME_MAX_AGE})
        else:
            url = _site(request, self.settings.public_url) + "/_wr/resume?" + link
            qr = "/_wr/qr.svg?" + link
            response = html_response(pages.resume_link_page(url, qr, request.language()))
        await response(request.scope, receive, send)

    async def _qr(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/qr.svg?t=…``: the resume link as a QR code, drawn here (no third
        party sees the link). Only for genuine resume tokens."""
        query = query_params(request.scope)
        if self.tickets.read_resume(query.get("t"), self.room) is None:
            await json_response({"error": "not found"}, 404)(request.scope, receive, send)
            return
        url = _site(request, self.settings.public_url) + "/_wr/resume?" + urlencode(
            {"room": self.room, "t": query["t"], "to": _same_site(query.get("to"))})
        svg = io.BytesIO()
        segno.make(url, error="m").save(svg, kind="svg", scale=4, xmldecl=False)
        await Response(svg.getvalue(), headers={**NO_STORE, "x-content-type-options": "nosniff"},
                       media_type="image/svg+xml")(request.scope, receive, send)

    async def _notify(self, request: Request, receive: Receive, send: Send) -> None:
        """``POST /_wr/notify`` (form or JSON: ``email`` and/or ``phone``, ``to``): tell
        me when it's my turn. The place is kept while the visitor is away. Limited per
        place and per network; numbers must be E.164 (``+447700900123``)."""
        place = self.tickets.read_place(request.cookies.get(self._ticket_cookie), self.room)
        if request.scope["method"] != "POST" or not self.notifier.enabled:
            answer = json_response({"error": "not found"}, 404)
        elif place is None:
            answer = json_response({"error": "no place in line"}, 404)
        else:
            answer = await self._take_notify(request, receive, place)
        await answer(request.scope, receive, send)

    async def _take_notify(
        self, request: Request, receive: Receive, place: tuple[str, int]
    ) -> Response:
        try:
            fields = await _small_form(receive)
        except BadRequest as bad:
            fields, unreadable = {}, str(bad)
        else:
            unreadable = ""
        if fields is None:
            return json_response({"error": "body too large"}, 413)
        limits = self.limits
        if not (limits.notify_per_visitor.allow(place[0])
                and limits.notify_per_network.allow_network(request.scope.get("client"))):
            return json_response({"error": "too many requests to be notified; try later"},
                                 429, {**NO_STORE, "retry-after": "600"})
        values, errors = validate(_NOTIFY_FIELDS, fields)
        if unreadable:
            errors = {"form": unreadable}
        elif not errors and not (values.get("email") or values.get("phone")):
            errors = {"email": "an email address or a phone number, please"}
        elif values.get("phone") and not errors:
            values["phone"] = e164(values["phone"]) or ""
            if not values["phone"]:
                errors = {"phone": "a phone number with its country code, like +44 7700 900123"}
        target = _same_site(fields.get("to"))
        if errors and not request.wants_json:  # the form again, saying what is wrong
            return html_response(pages.notify_page(
                request.language(), room=self.room, here=target,
                error="; ".join(errors.values())), 400)
        if errors:
            return json_response({"error": "check the fields", "errors": errors}, 400)
        if not await self.engine.ask_to_notify(
                self.room, place[0], {"email": values.get("email", ""),
                                      "phone": values.get("phone", ""),
                                      "origin": _site(request, self.settings.public_url),
                                      "to": target},
                number=place[1], away_seconds=self.settings.ticket_max_age_seconds):
            return json_response({"error": "no place in line"}, 404)
        if request.wants_json:
            return json_response({"state": "notify", "email": values.get("email") or None,
                                  "phone": values.get("phone") or None})
        return html_response(pages.notify_page(request.language()))

    async def _claim(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/claim?t=…``: a notified visitor's link. It admits them, once."""
        query = query_params(request.scope)
        visitor_id = self.tickets.read_claim(query.get("t"), self.room)
        visit = None
        if visitor_id and await self.engine.spend(self.room, "claim-" + visitor_id,
                                                  ttl_seconds=CLAIM_MAX_AGE):
            visit = await self.engine.visit(self.room, visitor_id, join=False)
        if visitor_id is None or visit is None or visit.state is not VisitState.ADMITTED:
            await html_response(pages.resume_refused_page(request.language()), 403)(
                request.scope, receive, send)
            return
        response = Response(b"", 303, headers={**NO_STORE,
                                               "location": _same_site(query.get("to"))})
        await _with_cookies(response, [self._pass_for(request, visitor_id)])(
            request.scope, receive, send)

    async def _send_notices(self) -> None:
        """Tell the admitted visitors who asked to be told (each once, in whichever
        process takes the request first); sending runs beside the tick."""
        due = await self.engine.notices_due(self.room)
        if due.away:  # their turn comes as sessions end: keep the line's upkeep going
            self.line.keep_looking()
        for visitor_id in due.admitted:
            record = await self.engine.take_notice(
                self.room, visitor_id, claim_seconds=self.settings.notify_claim_seconds)
            if record is None:
                continue
            link = record["origin"] + "/_wr/claim?" + urlencode(
                {"room": self.room, "t": self.tickets.issue_claim(self.room, visitor_id),
                 "to": record["to"]})
            task = asyncio.create_task(self.notifier.send(
                Notice(self.room, record["email"], record["phone"], link)))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _resume(self, request: Request, receive: Receive, send: Send) -> None:
        """``GET /_wr/resume?t=…&to=/path`` on the new device: the place moves here, at
        the same position; the old device is told it moved. Each link works once."""
        query = query_params(request.scope)
        old = self.tickets.read_resume(query.get("t"), self.room)
        new_id = new_visitor_id()
        visit = (await self.engine.resume(self.room, old[0], new_id, number=old[1],
                                          marker_seconds=self.settings.ticket_max_age_seconds)
                 if old else None)
        if visit is None:
            await html_response(pages.resume_refused_page(request.language()), 403)(
                request.scope, receive, send)
            return
        self.line.moved(visit.number)
        response = Response(b"", 303, headers={**NO_STORE,
                                               "location": _same_site(query.get("to"))})
        await _with_cookies(response, [self._ticket_for(request, new_id, visit.number)])(
            request.scope, receive, send)

    # -- the room's config and background work -------------------------------------

    async def room_config(self) -> RoomConfig:
        """The room's live config, at most a second old; refreshed in the background.
        The first call seeds a room Redis does not know yet and starts the breaker."""
        if self._config is None:
            capacity, message, capture = self._seed
            await self.engine.seed_room(self.room, capacity=capacity, message=message,
                                        capture=capture)
            self.breaker.start()
            self._config = await self.engine.room_config(self.room)
            self._config_expires = time.monotonic() + _CONFIG_TTL_SECONDS
        elif time.monotonic() > self._config_expires and self._config_refresh is None:
            self._config_refresh = asyncio.create_task(self.refresh_config())
        return self._config

    async def refresh_config(self) -> None:
        """Read the room's live config now (after an admin change, or when stale)."""
        try:
            self._config = await self.engine.room_config(self.room)
            self._config_expires = time.monotonic() + _CONFIG_TTL_SECONDS
        except RedisError:
            logger.warning("could not refresh room config; keeping the last one")
        finally:
            self._config_refresh = None

    def capturing(self, config: RoomConfig) -> bool:
        """Is the order flow replaced by the capture form right now?"""
        return config.capture == "on" or (config.capture == "auto"
                                          and self.breaker.state != "closed")

    async def _probe(self, config: RoomConfig) -> bool:
        """May this admitted request go through as one of the half-open breaker's probes?"""
        return (config.capture == "auto" and self.breaker.state == "half"
                and await self.breaker.take_probe())

    async def _tick(self) -> None:
        """Background work every half second: drain the capture spool, and the rest."""
        await self.desk.drain_spool()
        try:
            await self._release_again()
        except RedisError as exc:
            logger.warning("could not send %d missed releases yet: %s", len(self._unreleased),
                           exc)
        try:
            await self._touch_used()
        except RedisError as exc:
            logger.warning("could not keep sessions alive: %s", exc)
        if self.notifier.enabled:
            try:
                await self._send_notices()
            except RedisError as exc:
                logger.warning("could not look for visitors to notify: %s", exc)
        if self._on_tick is not None:
            await self._on_tick(self)

    async def aclose(self) -> None:
        """Stop the room's background work (the engine is the caller's to close)."""
        if self._config_refresh is not None:
            await self._config_refresh
        await asyncio.gather(*self._sending, return_exceptions=True)
        await self.line.aclose()
        await self.breaker.aclose()

    # -- helpers -------------------------------------------------------------------

    def _status_of(self, standing: _Standing, config: RoomConfig) -> Status:
        message = config.message or None
        if config.mode == "open":
            return Status(self.room, "open", message=message)
        capturing = self.capturing(config)
        if standing.admitted or standing.visit is None:
            return Status(self.room, "capture" if capturing else "admitted", message=message)
        if standing.visit.state is VisitState.MOVED:  # now held on another device
            return Status(self.room, "moved", message=message)
        if standing.visit.state is VisitState.NO_PLACE:  # a closed room took no new place
            return Status(self.room, "closed", message=message)
        if standing.visit.state is VisitState.PREQUEUE:  # before the scheduled start
            wait = max(0, config.start_at_ms - standing.visit.server_ms) // 1000
            return Status(self.room, "capture" if capturing else "prequeue",
                          eta_seconds=wait, message=message,
                          poll_after_seconds=poll_interval(0, self.settings.grace_seconds))
        position = standing.visit.position
        state: State = "capture" if capturing else "paused" if config.paused else "queued"
        return Status(
            self.room, state, position=position,
            eta_seconds=None if config.paused else self.rate.eta_seconds(position),
            message=message,
            poll_after_seconds=poll_interval(position, self.settings.grace_seconds,
                                             self.rate.per_second()),
        )

    def _cookie_place(self, request: Request) -> tuple[str | None, int]:
        """The visitor a genuine pass or ticket cookie names, if any, and the arrival
        number of its place in line (0 if none)."""
        session_id = self.tickets.read_pass(request.cookies.get(self._pass_cookie), self.room)
        if session_id is not None:
            return session_id, 0
        return (self.tickets.read_place(request.cookies.get(self._ticket_cookie), self.room)
                or (None, 0))

    def _pass_for(self, request: Request, visitor_id: str) -> bytes:
        return self._cookie(request, self._pass_cookie,
                            self.tickets.issue_pass(self.room, visitor_id),
                            self.settings.session_max_seconds)

    def _ticket_for(self, request: Request, visitor_id: str, number: int = 0) -> bytes:
        return self._cookie(request, self._ticket_cookie,
                            self.tickets.issue_ticket(self.room, visitor_id, number),
                            self.settings.ticket_max_age_seconds)

    def _cookie(self, request: Request, name: str, value: str, max_age: int) -> bytes:
        secure = "; Secure" if request.secure else ""
        return (f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax"
                f"{secure}").encode()


async def unavailable(request: Request, receive: Receive, send: Send) -> None:
    """Answer while Redis is unreachable: a 503 that says to try again shortly."""
    if request.scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1013})  # try again later
        return
    headers = {**NO_STORE, "retry-after": "5"}
    if request.wants_json or request.scope["path"].startswith(RESERVED_PREFIX):
        response = json_response({"error": "temporarily unavailable"}, 503, headers)
    else:
        response = html_response(pages.unavailable_page(request.language()), 503, headers)
    await response(request.scope, receive, send)


async def too_many_new_places(
    request: Request, limit: RateLimit, receive: Receive, send: Send
) -> None:
    """Answer a cookieless request from a network over its new-place limit: 429."""
    headers = {**NO_STORE, "retry-after": str(limit.retry_after_seconds)}
    if request.wants_json or request.scope["path"].startswith(RESERVED_PREFIX):
        response = json_response({"error": "too many new places from your network; "
                                  "try again shortly"}, 429, headers)
    else:
        response = html_response(pages.too_many_page(limit.retry_after_seconds), 429, headers)
    await response(request.scope, receive, send)


def _same_site(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``: never an open redirect,
    and always a valid ``Location`` (ASCII)."""
    return safe_location(target) if target and same_origin_path(target) else "/"


_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def _site(request: Request, public_url: str) -> str:
    """``scheme://host`` for links to be opened on another device: ``public_url``, or
    this request's own ``Host`` if that is a plain host name (shown to this visitor
    only, never sent elsewhere)."""
    if public_url:
        return public_url.rstrip("/")
    host = next((v.decode("latin-1") for k, v in request.scope["headers"] if k == b"host"),
                "")
    scheme = "https" if request.secure else "http"
    return f"{scheme}://{host if _HOST.fullmatch(host) else 'localhost'}"


async def _busy(request: Request, status: int, receive: Receive, send: Send) -> None:
    """Past a per-process limit: try again in a second."""
    headers = {**NO_STORE, "retry-after": "1"}
    await json_response({"error": "too many requests at once; try again shortly"}, status,
                        headers)(request.scope, receive, send)


def _language_cookie(request: Request) -> list[bytes]:
    """Remember a language picked with the switcher (a year; the whole site)."""
    lang = request.chosen_language()
    if lang is None:
        return []
    secure = "; Secure" if request.secure else ""
    return [f"{LANGUAGE_COOKIE}={lang}; Max-Age=31536000; Path=/; SameSite=Lax{secure}"
            .encode()]


async def _small_form(receive: Receive) -> dict[str, str] | None:
    """String fields of a small form or JSON body; None if it is too large. Raises
    :class:`BadRequest` if it cannot be read as sent."""
    try:
        body = await read_body(receive, _SMALL_FORM_LIMIT)
    except BodyTooLarge:
        return None
    data = form_fields(body, as_json=body.lstrip().startswith(b"{"))
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _with_cookies(response: Response, cookies: list[bytes]) -> Response:
    response.raw_headers.extend((b"set-cookie", c) for c in cookies)
    return response


def forwarded(
    scope: Scope, incoming_id: bytes | None, rid: str, *extra: tuple[bytes, bytes]
) -> Scope:
    """A copy of ``scope`` carrying the request id and ``extra`` headers (``scope``
    itself when there is nothing to add)."""
    encoded = rid.encode()
    if incoming_id == encoded and not extra:
        return scope
    headers = scope["headers"]
    if incoming_id is not None:
        headers = [h for h in headers if h[0] != REQUEST_ID_HEADER]
    return {**scope, "headers": [*headers, (REQUEST_ID_HEADER, encoded), *extra]}
