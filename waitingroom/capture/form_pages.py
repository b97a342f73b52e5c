"""The capture form shown while the order system is down, and its receipt."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from waitingroom.fields import CaptureField
from waitingroom.status import Status
from waitingroom.web.renderer import Pages

_AUTOCOMPLETE = {"name": "name", "email": "email", "phone": "tel"}
_INPUT_TYPES = {"email": "email", "phone": "tel"}


@dataclass(frozen=True, slots=True)
class ShownField:
    """One field of the form as the page shows it, in the visitor's language."""

    name: str
    kind: str
    required: bool
    max_length: int
    choices: tuple[str, ...]
    label: str
    input_type: str
    autocomplete: str
    value: str = ""
    error: str = ""
    """What is wrong with the value sent, in words; empty if nothing."""


def capture_page(
    pages: Pages,
    fields: tuple[CaptureField, ...],
    *,
    csrf: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: Status,
    notice: str = "",
    lang: str = "en",
    here: str = "",
    interest: bool = False,
) -> bytes:
    """The data-capture form shown while the order system is unavailable, in ``lang``
    (the labels of the usual fields too; an operator's own field keeps its label);
    ``errors`` are :data:`waitingroom.fields.ERRORS` codes; ``notice`` is a message to
    translate; ``here`` is where the language switcher points (none after a submission).
    The empty form, which every shopper gets while capture lasts, is built once per
    room and language; only its CSRF token and place are filled in."""
    page = {"room": status.room, "message": status.message or "",
            "has_place": bool(status.position), "interest": interest}
    live = {"csrf": csrf, "position": str(status.position or "")}
    if values or errors or notice:  # one visitor's answer: not for keeping
        languages = pages.languages
        return pages.render("capture.html", lang, here=here, **page, **live,
                            fields=_shown(pages, fields, lang, values or {}, errors or {}),
                            notice=languages.gettext(lang, notice) if notice else "",
                            has_errors=bool(errors))
    return pages.framed("capture.html", lang, live, here=here, **page, notice="",
                        has_errors=False, fields=_empty(pages, fields, lang))


def _shown(pages: Pages, fields: tuple[CaptureField, ...], lang: str,
           values: dict[str, str], errors: dict[str, str]) -> tuple[ShownField, ...]:
    languages = pages.languages
    return tuple(ShownField(
        f.name, f.kind, f.required, f.max_length, f.choices,
        languages.field_label(f.name, f.label, lang), _INPUT_TYPES.get(f.kind, "text"),
        _AUTOCOMPLETE.get(f.name, "on"), values.get(f.name, ""),
        languages.field_error(errors[f.name], lang, f.max_length) if f.name in errors else "",
    ) for f in fields)


@lru_cache(maxsize=64)
def _empty(pages: Pages, fields: tuple[CaptureField, ...], lang: str) -> tuple[ShownField, ...]:
    """The form's fields before anything is sent: the same for everyone."""
    return _shown(pages, fields, lang, {}, {})


def captured_page(pages: Pages, reference: str, lang: str = "en", *,
                  interest: bool = False) -> bytes:
    """Shown once a capture is durably stored: the reference to keep."""
    return pages.render("captured.html", lang, reference=reference, interest=interest)
