"""The data-capture form: its fields (declared in config), validation and references.

When the order system is down the waiting room keeps taking customers' details
instead of failing them. Everything here is pure: storage is in the engine (Redis
stream) and the spool (local file).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

KINDS = ("text", "email", "phone", "consent", "choice")
_DEFAULT_MAX = {"text": 200, "email": 254, "phone": 32, "consent": 5, "choice": 100}
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9 ()./-]{6,32}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_CHOICE = re.compile(r"choice\(([^)]*)\)")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_FIELDS = 20


@dataclass(frozen=True, slots=True)
class CaptureField:
    """One field of the capture form."""

    name: str
    kind: str
    required: bool
    max_length: int
    choices: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """Human label derived from the name (``postal_code`` -> ``Postal code``)."""
        return self.name.replace("_", " ").capitalize()


def parse_fields(spec: str) -> tuple[CaptureField, ...]:
    """Parse ``name:kind[:required][:max]`` items; raise ValueError saying what is wrong."""
    fields: list[CaptureField] = []
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        name, _, rest = item.partition(":")
        kind, *options = rest.split(":") if rest else ["text"]
        choices: tuple[str, ...] = ()
        match = _CHOICE.fullmatch(kind)
        if match:
            kind, choices = "choice", tuple(c for c in match.group(1).split("|") if c)
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"field name {name!r}: lowercase letters, digits, _")
        if kind not in KINDS or (kind == "choice" and not choices):
            raise ValueError(f"field {name!r}: kind must be one of text, email, phone, "
                             "consent, choice(a|b)")
        required = "required" in options
        lengths = [o for o in options if o != "required"]
        if len(lengths) > 1 or (lengths and not lengths[0].isdigit()):
            raise ValueError(f"field {name!r}: options are 'required' and a max length")
        max_length = int(lengths[0]) if lengths else _DEFAULT_MAX[kind]
        if not 1 <= max_length <= 2000:
            raise ValueError(f"field {name!r}: max length must be 1-2000")
        fields.append(CaptureField(name, kind, required, max_length, choices))
    names = [f.name for f in fields]
    if not fields or len(fields) > MAX_FIELDS or len(set(names)) != len(names):
        raise ValueError(f"needs 1-{MAX_FIELDS} fields with distinct names")
    return tuple(fields)


ERRORS = ("not_text", "required", "tick", "too_long", "email", "phone", "choice")
"""What :func:`validate` may find wrong with a field (``error_<code>`` in the texts)."""


def validate(
    fields: tuple[CaptureField, ...], data: Mapping[str, object]
) -> tuple[dict[str, str], dict[str, str]]:
    """Clean submitted values; return (values, errors by field name). Each error is
    one of :data:`ERRORS` (the words, in each language, are the pages' to choose).

    Values are trimmed strings; unknown keys are ignored; anything not a string (a
    JSON number, list, ...) is an error rather than silently converted.
    """
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in fields:
        raw = data.get(field.name, "")
        if not isinstance(raw, str):
            errors[field.name] = "not_text"
            continue
        value = _CONTROL.sub("", raw).strip()
        values[field.name] = value
        if not value:
            if field.required:
                errors[field.name] = "tick" if field.kind == "consent" else "required"
            continue
        if len(value) > field.max_length:
            errors[field.name] = "too_long"
        elif field.kind == "email" and not _EMAIL.fullmatch(value):
            errors[field.name] = "email"
        elif field.kind == "phone" and not _PHONE.fullmatch(value):
            errors[field.name] = "phone"
        elif field.kind == "consent" and value not in ("on", "yes", "1", "true"):
            errors[field.name] = "tick"
        elif field.kind == "choice" and value not in field.choices:
            errors[field.name] = "choice"
    return values, errors


def e164(phone: str) -> str | None:
    """``phone`` as an E.164 number (``+447700900123``) if it is one, written with
    any spaces, dots, dashes or brackets; else None."""
    digits = re.sub(r"[ ()./-]", "", phone)
    return digits if _E164.fullmatch(digits) else None


def reference_for(secret: str, room: str, visitor_id: str, values: Mapping[str, str],
                  prefix: str = "WR") -> str:
    """A short reference, the same for the same visitor submitting the same details,
    so a double submit (or a retry) is stored once; unguessable without the secret.
    ``prefix`` tells kinds apart (``WR``: an order; ``WI``: interest in more stock)."""
    kind = [] if prefix == "WR" else [prefix]  # orders' references as they always were
    canonical = json.dumps([room, visitor_id, sorted(values.items()), *kind],
                           separators=(",", ":"))
    digest = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).digest()
    code = base64.b32encode(digest[:8]).decode().rstrip("=")
    return f"{prefix}-{code[:4]}-{code[4:8]}-{code[8:12]}"
