"""The capture form shown while the order system is down, and its receipt."""

from __future__ import annotations

from waitingroom.fields import CaptureField
from waitingroom.status import Status
from waitingroom.web.pages import Pages

_AUTOCOMPLETE = {"name": "name", "email": "email", "phone": "tel"}
_INPUT_TYPES = {"email": "email", "phone": "tel"}


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
) -> bytes:
    """The data-capture form shown while the order system is unavailable, in ``lang``
    (the labels of the usual fields too; an operator's own field keeps its label);
    ``errors`` are :data:`waitingroom.fields.ERRORS` codes; ``notice`` is a message to
    translate; ``here`` is where the language switcher points (none after a submission)."""
    values, errors = values or {}, errors or {}
    languages = pages.languages
    shown = [{"name": f.name, "kind": f.kind, "required": f.required,
              "max_length": f.max_length, "choices": f.choices,
              "label": languages.field_label(f.name, f.label, lang),
              "value": values.get(f.name, ""),
              "error": (languages.field_error(errors[f.name], lang, f.max_length)
                        if f.name in errors else ""),
              "input_type": _INPUT_TYPES.get(f.kind, "text"),
              "autocomplete": _AUTOCOMPLETE.get(f.name, "on")} for f in fields]
    return pages.render("capture.html", lang, here=here, room=status.room, csrf=csrf,
                        position=status.position, message=status.message or "",
                        notice=languages.gettext(lang, notice) if notice else "",
                        has_errors=bool(errors), fields=shown)


def captured_page(pages: Pages, reference: str, lang: str = "en") -> bytes:
    """Shown once a capture is durably stored: the reference to keep."""
    return pages.render("captured.html", lang, reference=reference)
