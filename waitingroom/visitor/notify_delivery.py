"""Notify me: tell a visitor who walked away that it is their turn.

By email over SMTP (``smtp_url``) and/or a webhook (``notify_webhook_url``, e.g. an
SMS gateway) whose body is signed with HMAC-SHA256 (``X-WaitingRoom-Signature:
sha256=<hex>``) so the receiver can check it came from us. Each message carries a
one-time link that admits the visitor.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

import aiohttp

from waitingroom.settings import Settings

logger = logging.getLogger("waitingroom.notify")
SIGNATURE_HEADER = "X-WaitingRoom-Signature"
_TRIES = 3
_TIMEOUT_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Notice:
    """One message: "it's your turn" or, for ``restock``, "more stock is in"."""

    room: str
    email: str
    phone: str
    link: str
    """The one-time link that admits the visitor (for a restock: the shop)."""
    restock: bool = False
    claim_minutes: int = 1
    """How long the link holds the visitor's turn (``notify_claim_seconds``)."""

    @property
    def subject(self) -> str:
        """The message's subject line."""
        return "More stock is in" if self.restock else "It's your turn"

    @property
    def text(self) -> str:
        """The message's words, with the link."""
        if self.restock:
            return (f"You asked to hear if more stock came in: it has. The line is moving "
                    f"again; join it here:\n\n{self.link}\n")
        minutes = "minute" if self.claim_minutes == 1 else f"{self.claim_minutes} minutes"
        return (f"It's your turn. Open this link within the next {minutes} to go straight "
                f"in (it works once):\n\n{self.link}\n")


class Notifier:
    """Sends notices by the channels the settings configure, retrying each a few times."""

    def __init__(self, settings: Settings) -> None:
        self._smtp = urlsplit(settings.smtp_url) if settings.smtp_url else None
        self._sender = settings.notify_from
        self._webhook = settings.notify_webhook_url
        self._webhook_key = settings.notify_webhook_secret.encode()

    @property
    def enabled(self) -> bool:
        """Is any channel configured?"""
        return self._smtp is not None or bool(self._webhook)

    async def send(self, notice: Notice) -> None:
        """Send ``notice`` on every channel it has an address for (errors are logged,
        and so is a notice cut off by the process stopping)."""
        try:
            if notice.email and self._smtp is not None:
                await self._with_retries("email",
                                         lambda: asyncio.to_thread(self._mail, notice))
            if notice.phone and self._webhook:
                await self._with_retries("webhook", lambda: self._post(notice))
        except asyncio.CancelledError:
            logger.error("a notice for room %s was not sent: the process stopped first",
                         notice.room)
            raise

    async def _with_retries(
        self, channel: str, attempt: Callable[[], Awaitable[None]]
    ) -> None:
        for tries in range(1, _TRIES + 1):
            try:
                await attempt()
                return
            except (OSError, smtplib.SMTPException, aiohttp.ClientError) as exc:
                logger.warning("notify by %s failed (try %d): %s", channel, tries, exc)
                await asyncio.sleep(2 ** tries)

    def _mail(self, notice: Notice) -> None:
        assert self._smtp is not None and self._smtp.hostname is not None
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = notice.email
        message["Subject"] = notice.subject
        message.set_content(notice.text)
        with smtplib.SMTP(self._smtp.hostname, self._smtp.port or 25,
                          timeout=_TIMEOUT_SECONDS) as smtp:
            if self._smtp.username:
                smtp.starttls()
                smtp.login(self._smtp.username, self._smtp.password or "")
            smtp.send_message(message)

    async def _post(self, notice: Notice) -> None:
        body = json.dumps({"room": notice.room, "phone": notice.phone, "url": notice.link,
                           "kind": "restock" if notice.restock else "turn",
                           "text": f"{notice.subject}: {notice.link}"}).encode()
        signature = hmac.new(self._webhook_key, body, hashlib.sha256).hexdigest()
        timeout = aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                self._webhook, data=body, headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: f"sha256={signature}"}) as response:
            response.raise_for_status()
