"""The capture form shown while the order system is down, and its receipt."""

from __future__ import annotations

from html import escape

from waitingroom.fields import CaptureField
from waitingroom.status import Status
from waitingroom.web.i18n import field_error, field_label
from waitingroom.web.pages import HEAD, html_text, in_room, switcher

_AUTOCOMPLETE = {"name": "name", "email": "email", "phone": "tel"}
_INPUT_TYPES = {"email": "email", "phone": "tel"}


def _input(field: CaptureField, value: str, error: str | None, lang: str) -> str:
    name = escape(field.name)
    label = escape(field_label(field.name, field.label, lang))
    described = f' aria-invalid="true" aria-describedby="e-{name}"' if error else ""
    required = " required" if field.required else ""
    if field.kind == "consent":
        checked = " checked" if value else ""
        control = (f'<label><input type="checkbox" name="{name}" value="yes"{checked}'
                   f'{required}{described}> {html_text("consent_text", lang)}</label>')
    elif field.kind == "choice":
        options = "".join(
            f'<option{" selected" if c == value else ""}>{escape(c)}</option>'
            for c in field.choices)
        control = (f'<label for="f-{name}">{label}</label><select id="f-{name}" '
                   f'name="{name}"{required}{described}><option value="">'
                   f'{html_text("choose", lang)}</option>{options}</select>')
    else:
        kind = _INPUT_TYPES.get(field.kind, "text")
        auto = _AUTOCOMPLETE.get(field.name, "on")
        control = (f'<label for="f-{name}">{label}</label><input id="f-{name}" '
                   f'name="{name}" type="{kind}" maxlength="{field.max_length}" '
                   f'autocomplete="{auto}" value="{escape(value)}"{required}{described}>')
    problem = (f'<span class="err" id="e-{name}">'
               f'{escape(field_error(error, lang, field.max_length))}</span>' if error else "")
    return f'<p class="field">{control}{problem}</p>'


def capture_page(
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
    ``errors`` are :data:`waitingroom.fields.ERRORS` codes; ``here`` is where the
    language switcher points (none after a submission)."""
    values, errors = values or {}, errors or {}
    head = HEAD.format(lang=lang, title=html_text("capture_title", lang), extra="")
    place = f"<p>{html_text('place_kept', lang, n=status.position)}</p>" if status.position else ""
    message = escape(status.message or "")
    summary = (f'<p class="err" role="alert">{escape(notice)}</p>' if notice else
               f'<p class="err" role="alert">{html_text("check_fields", lang)}</p>'
               if errors else "")
    inputs = "".join(_input(f, values.get(f.name, ""), errors.get(f.name), lang)
                     for f in fields)
    body = f"""<h1>{html_text("capture_title", lang)}</h1>
<div class="card"><p>{html_text("capture_why", lang)}</p>{place}</div>
<p class="msg" id="wr-message"{"" if message else " hidden"}>{message}</p>
{summary}<form method="post" action="{escape(in_room("/_wr/capture", status.room))}" \
class="card" novalidate>
<input type="hidden" name="csrf" value="{escape(csrf)}">
{inputs}<p><button type="submit">{html_text("send_details", lang)}</button></p></form>
<p class="note"><a href="{escape(in_room("/_wr/status-page", status.room))}">\
{html_text("status_page", lang)}</a></p>
{switcher(lang, here) if here else ""}</main></body></html>
"""
    return (head + body).encode()


def captured_page(reference: str, lang: str = "en") -> bytes:
    """Shown once a capture is durably stored: the reference to keep."""
    head = HEAD.format(lang=lang, title=html_text("received_title", lang), extra="")
    return (head + f"""<h1>{html_text("received_title", lang)}</h1>
<div class="card" role="status"><p>{html_text("received", lang)}</p>
<p class="pos ref">{escape(reference)}</p>
<p>{html_text("received_keep", lang)}</p></div>
</main></body></html>
""").encode()
