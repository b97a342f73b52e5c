"""One frozen, validated settings object, built once at start-up
(:func:`waitingroom.config.load_settings` reads it from its sources). Every setting is
declared once, in :mod:`waitingroom.settings_fields` (pydantic): its type, bounds,
default and the description ``serve --help`` prints. A bad value raises
:class:`~waitingroom.errors.ConfigError` naming the key."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from waitingroom.errors import ConfigError
from waitingroom.setting_types import MIN_SECRET_LENGTH, ROOM_NAME
from waitingroom.settings_fields import Access, Capture, Look, Notify, Proxy, Serving, Sessions

__all__ = ["ENV_PREFIX", "ROOM_NAME", "SECRET_SETTINGS", "Settings"]

ENV_PREFIX = "WAITINGROOM_"
SECRET_SETTINGS = frozenset({"secret", "admin_token", "metrics_token", "smtp_url",
                             "notify_webhook_secret"})
"""Settings taken from the environment or the config file only, never from a flag (a
process's arguments are visible to every user of the machine)."""

_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
          "string": "text", "tuple": "a comma-separated list", "list": "a comma-separated list"}
"""What a value that is not of its setting's type must be, by pydantic's error type."""


class Settings(Notify, Access, Capture, Proxy, Look, Sessions, Serving):
    # pydantic lists the fields of the last base first: Serving's lead, as in --help.
    """Everything a waiting room process needs; see ``docs/configuration.md``."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0]) if error["loc"] else ""
            raise ConfigError(key, _problem(error, type(self).model_fields.get(key),
                                            shows_value=key not in SECRET_SETTINGS)) from None
        _check_across(self)

    def require(self, *names: str) -> None:
        """Raise :class:`ConfigError` for the first of ``names`` left empty."""
        for name in names:
            if not getattr(self, name):
                flag = "" if name in SECRET_SETTINGS else f"--{name.replace('_', '-')}, or "
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}",
                                  f"is required (or {flag}{name} in the config file)")

    @classmethod
    def help_texts(cls) -> dict[str, str]:
        """Each setting's description, by name, as plain text (for ``serve --help``)."""
        return {name: " ".join((field.description or "").replace("``", "").split())
                for name, field in cls.model_fields.items()}

    @classmethod
    def kind_of(cls, name: str) -> str:
        """What a setting holds, as a flag's metavar shows it: ``N``, ``X``, ``BOOL``,
        ``A,B``, ``JSON``, the choices (``auto|on|off``) or ``TEXT``."""
        annotation = cls.model_fields[name].annotation
        if typing.get_origin(annotation) is typing.Literal:
            return "|".join(str(choice) for choice in typing.get_args(annotation))
        if annotation == tuple[str, ...]:
            return "A,B"
        if typing.get_origin(annotation) is tuple:
            return "JSON"
        names: dict[Any, str] = {int: "N", float: "X", bool: "BOOL"}
        return names.get(annotation, "TEXT")


def _problem(error: ErrorDetails, field: FieldInfo | None, *, shows_value: bool) -> str:
    """What is wrong, in the words of ``docs/configuration.md``."""
    kind, context = error["type"], error.get("ctx", {})
    got = f", got {error['input']!r}" if shows_value else ""
    bounds = {k: v for item in (field.metadata if field else ()) for k in ("ge", "gt", "le")
              if (v := getattr(item, k, None)) is not None}
    if kind == "value_error":
        return str(context["error"])
    if kind == "extra_forbidden":
        return "is not a setting"
    if kind == "literal_error":
        return f"must be {str(context['expected']).replace(chr(39), '')}{got}"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "entries"
        return f"at most {context['max_length']} {unit}"
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return f"must be {_KINDS.get(kind.partition('_')[0], 'valid')}{got}"
    if "ge" in bounds and "le" in bounds:
        return f"must be {bounds['ge']}-{bounds['le']}"
    if "gt" in bounds and "le" in bounds:
        return f"must be above {bounds['gt']:g} and at most {bounds['le']:g}"
    if kind == "greater_than_equal":
        return f"must be at least {bounds['ge']}"
    if kind == "greater_than":
        return "must be positive"
    return f"must be {_KINDS.get(kind.partition('_')[0], 'valid')}{got}"


def _check_across(settings: Settings) -> None:
    """The rules that tie one setting to another; ConfigError naming the first broken."""
    rules = (
        (settings.session_max_seconds >= settings.session_idle_seconds, "session_max_seconds",
         "must be at least session_idle_seconds"),
        (settings.ticket_max_age_seconds >= settings.grace_seconds, "ticket_max_age_seconds",
         "must be at least grace_seconds"),
        (settings.notify_claim_seconds >= settings.grace_seconds, "notify_claim_seconds",
         "must be at least grace_seconds"),
        (not settings.notify_webhook_url
         or len(settings.notify_webhook_secret) >= MIN_SECRET_LENGTH, "notify_webhook_secret",
         f"needs at least {MIN_SECRET_LENGTH} characters with a webhook"),
        (bool(settings.public_url) or not (settings.smtp_url or settings.notify_webhook_url),
         "public_url", "is required with notify-me (smtp_url or notify_webhook_url): the "
         "links it sends are built on it, never on a visitor's Host header"),
    )
    for ok, key, problem in rules:
        if not ok:
            raise ConfigError(key, problem)
