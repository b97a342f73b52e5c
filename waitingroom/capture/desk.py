"""The capture form's endpoint: take a customer's details, store them durably, and
only then show the reference.

Storage order: the room's Redis stream (fsync'd per the AOF policy); if Redis is
unreachable, the local spool (fsync'd); if both fail, the visitor is told to try
again and shown no reference.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import Receive

from waitingroom.capture import form_pages
from waitingroom.capture.spool import Spool
from waitingroom.engine import Engine
from waitingroom.fields import CaptureField, reference_for, validate
from waitingroom.settings import Settings
from waitingroom.status import Status
from waitingroom.tickets import Tickets
from waitingroom.web.asgi import (
    NO_STORE,
    BadRequest,
    BodyTooLarge,
    ClientGone,
    form_fields,
    html_response,
    json_response,
    read_body,
)
from waitingroom.web.i18n import N_
from waitingroom.web.limits import NetworkShare
from waitingroom.web.renderer import Pages
from waitingroom.web.request import Request

logger = logging.getLogger("waitingroom.capture")

MAX_BODY_BYTES = 16 * 1024
SESSION_EXPIRED = N_("Your session has expired: please reload the page.")
FORM_EXPIRED = N_("This form has expired: please send it again.")
NOT_SAVED = N_("We could not save your details just now. Please send the form again in a "
               "moment.")
TOO_MANY = N_("Too many attempts: please wait a minute and send the form again.")


class _Rejected(Exception):
    """The submission cannot be taken: ``problem`` says why (a message to translate)."""

    def __init__(self, status: int, problem: str) -> None:
        super().__init__(problem)
        self.status = status
        self.problem = problem


class CaptureDesk:
    """Serves the capture form and takes its submissions for one room."""

    def __init__(
        self, *, settings: Settings, room: str, engine: Engine, tickets: Tickets,
        fields: tuple[CaptureField, ...], records: NetworkShare, pages: Pages,
        interest: bool = False,
    ) -> None:
        self.room = room
        self.pages = pages
        self.records = records
        """The share of details each network may leave (per process)."""
        self.engine = engine
        self.tickets = tickets
        self.fields = fields
        self.interest = interest
        """Takes the details of people to tell if more stock comes in, not orders."""
        self.spool = Spool(settings.capture_spool_dir, f"{room}.interest" if interest else room)
        self._secret = settings.secret[0]
        self._per_minute = settings.capture_rate_per_minute

    def form(
        self, visitor_id: str, status: Status, request: Request, *, status_code: int = 200,
        values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
        notice: str = "", here: str = "",
    ) -> Response:
        """The form (HTML, in the visitor's language; ``here``: where its language
        switcher points) or its description (JSON, in English), carrying a fresh CSRF
        token. ``notice`` is a message; ``errors`` are :data:`waitingroom.fields.ERRORS`
        codes."""
        csrf = self.tickets.issue_csrf(self.room, visitor_id)
        languages = request.languages
        if request.wants_json:
            by_name = {f.name: f for f in self.fields}
            body = {**status.as_dict(), "csrf": csrf,
                    "errors": {name: languages.field_error(code, "en", by_name[name].max_length)
                               for name, code in (errors or {}).items()},
                    "fields": [{"name": f.name, "kind": f.kind, "required": f.required,
                                "max_length": f.max_length, "choices": list(f.choices)}
                               for f in self.fields]}
            if notice:
                body["error"] = notice
            return json_response(body, status_code)
        html = form_pages.capture_page(self.pages, self.fields, csrf=csrf, values=values,
                                  errors=errors, lang=request.language(), status=status,
                                  notice=notice, here=here, interest=self.interest)
        return html_response(html, status_code)

    async def submit(
        self, visitor_id: str | None, status: Status, request: Request, receive: Receive, *,
        number: int = 0,
    ) -> Response:
        """``POST /_wr/capture``: validate, store durably, answer with the reference.
        ``number``: the visitor's arrival number in line (0 if none): the record's place."""
        try:
            data = await _read_submission(dict(request.scope["headers"]), receive)
            if visitor_id is None:
                raise _Rejected(403, SESSION_EXPIRED)
            token = data.pop("csrf", None)
            if self.tickets.read_csrf(token if isinstance(token, str) else None,
                                      self.room) != visitor_id:
                raise _Rejected(403, FORM_EXPIRED)
        except _Rejected as rejected:
            if visitor_id is None or rejected.status == 413:
                return _plain(rejected.status, rejected.problem, request.wants_json)
            return self.form(visitor_id, status, request, status_code=rejected.status,
                             notice=rejected.problem)
        values, errors = validate(self.fields, data)
        if errors:
            return self.form(visitor_id, status, request, status_code=400, values=values,
                             errors=errors)
        reference = reference_for(self._secret, self.room, visitor_id, values,
                                  "WI" if self.interest else "WR")
        if not self.records.allow(request.scope.get("client")):
            return self.form(visitor_id, status, request, status_code=429, values=values,
                             notice=TOO_MANY)
        try:
            stored = await self._store(reference, visitor_id, number, values)
        except OSError:
            logger.exception("capture %s could not be stored anywhere", reference)
            return self.form(visitor_id, status, request, status_code=503, values=values,
                             notice=NOT_SAVED)
        if not stored:
            return self.form(visitor_id, status, request, status_code=429, values=values,
                             notice=TOO_MANY)
        if request.wants_json:
            return json_response({"state": "captured", "reference": reference})
        return html_response(form_pages.captured_page(self.pages, reference, request.language(),
                                                 interest=self.interest))

    async def _store(
        self, reference: str, visitor_id: str, number: int, values: dict[str, str]
    ) -> bool:
        try:
            return await self.engine.captures.store(self.room, reference, visitor_id, values,
                                                    per_minute=self._per_minute,
                                                    number=number, interest=self.interest)
        except (RedisError, ConnectionError) as exc:
            logger.warning("redis unavailable; spooling capture %s locally: %s", reference,
                           exc)
        await self.spool.append({"reference": reference, "visitor": visitor_id,
                                 "number": number, "fields": values,
                                 "submitted_at_ms": int(time.time() * 1000)})
        return True

    async def drain_spool(self) -> None:
        """Move captures spooled while Redis was away into the stream (idempotent)."""
        if not self.spool.has_records():
            return
        try:
            drained = await self.spool.drain(self._store_spooled)
        except (RedisError, ConnectionError) as exc:
            logger.warning("spool drain stopped, will retry: %s", exc)
            return
        logger.warning("drained %d spooled captures into redis", drained)

    async def _store_spooled(self, record: dict[str, Any]) -> None:
        await self.engine.captures.store(
            self.room, record["reference"], record["visitor"], record["fields"],
            per_minute=self._per_minute, submitted_at_ms=record["submitted_at_ms"],
            number=record.get("number", 0), interest=self.interest)


async def _read_submission(headers: dict[bytes, bytes], receive: Receive) -> dict[str, object]:
    try:
        body = await read_body(receive, MAX_BODY_BYTES)
    except ClientGone:
        raise _Rejected(400, N_("The form did not arrive completely.")) from None
    except BodyTooLarge:
        raise _Rejected(413, N_("The form is too large.")) from None
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type not in (b"application/json", b"application/x-www-form-urlencoded", b""):
        raise _Rejected(415, N_("Send the form as a web form or as JSON."))
    try:  # strictly: a reference is only ever shown for exactly what was sent
        return form_fields(body, as_json=content_type == b"application/json")
    except BadRequest as bad:
        raise _Rejected(400, str(bad)) from None


def _plain(status: int, problem: str, wants_json: bool) -> Response:
    if wants_json:
        return json_response({"error": problem}, status)
    return Response(problem.encode(), status, headers=NO_STORE, media_type="text/plain")
