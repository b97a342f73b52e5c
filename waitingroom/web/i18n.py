"""The visitor's pages in many languages: English (the texts' own words) and one gettext
catalog, ``<code>.po``, per other language: ours under ``locales/`` and any the operator
adds in ``locales_dir``. Adding a language is adding a catalog (Babel reads it, plural
rules and all); ``make catalogs`` brings every catalog up to date with the texts.

The language is the visitor's choice from the switcher (``?lang=``, remembered in the
``wr_lang`` cookie), else the best match of ``Accept-Language``, else English.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Formatter

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import NullTranslations, Translations

DEFAULT = "en"
LANGUAGE_COOKIE = "wr_lang"
_CODE = re.compile(r"[a-z]{2,3}")


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs; it is translated where it is shown."""
    return message


def Nn_(singular: str, plural: str) -> tuple[str, str]:
    """Mark a message with a plural for the catalogs; translated where it is shown."""
    return singular, plural


FIELD_LABELS = {"name": N_("Name"), "email": N_("Email"), "phone": N_("Phone"),
                "address": N_("Address"), "city": N_("City"),
                "postal_code": N_("Postal code"), "country": N_("Country"),
                "product": N_("Product"), "quantity": N_("Quantity"), "plan": N_("Plan"),
                "store": N_("Store")}
"""Our labels for the usual capture fields (an operator's own field keeps its label)."""
ERRORS: dict[str, str | tuple[str, str]] = {
    "not_text": N_("must be text"), "required": N_("this field is required"),
    "tick": N_("please tick this box"),
    "too_long": Nn_("at most {n} character", "at most {n} characters"),
    "email": N_("please enter an email address like name@example.com"),
    "phone": N_("please enter a phone number (digits, spaces, +)"),
    "choice": N_("please pick one of the options"),
    "need_contact": N_("an email address or a phone number, please"),
    "phone_e164": N_("a phone number with its country code, like +44 7700 900123")}
"""What :func:`waitingroom.fields.validate` and notify-me find wrong, by code."""
STATES = {
    "queueing": N_("Queue running: people are let in first come, first served, as places "
                   "free up."),
    "draw": N_("Queue running: each time a place frees up, one of those waiting is drawn "
               "at random."),
    "paused": N_("Entry is paused for a moment. Everyone in line keeps their place."),
    "open": N_("Open: there is no queue right now."),
    "scheduled": N_("The sale has not started yet. Everyone who arrives before the start "
                    "gets a place in line in random order at the start; after that, first "
                    "come, first served."),
    "closed": N_("The line is closed to new arrivals. Everyone already in line will be "
                 "let in, in order."),
    "sold_out": N_("Sold out: everything on sale has been sold. Those in line keep their "
                   "places in case more stock comes in."),
    "capture": N_("Our order system is down. We are taking customers' details and will "
                  "process them in the order people arrived.")}
"""The room's state, as the status page says it."""


class CatalogError(ValueError):
    """A catalog that cannot be used: its file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Language:
    """One language the pages can be read in."""

    code: str
    name: str
    """Its own name for itself, as the switcher shows it."""
    direction: str
    """``ltr`` or ``rtl``."""
    translations: NullTranslations


def read_catalog(path: Path) -> Language:
    """The language of the catalog at ``path`` (named ``<code>.po``), or
    :class:`CatalogError` saying what is wrong with it."""
    code = path.stem
    try:
        if not _CODE.fullmatch(code):
            raise CatalogError("name it <language code>.po, e.g. es.po")
        locale = Locale.parse(code)
        with path.open("rb") as po:
            catalog = read_po(po, locale=code, abort_invalid=True)
        for message in catalog:
            _check_placeholders(message.id, message.string)
        mo = io.BytesIO()
        write_mo(mo, catalog)  # skips fuzzy and untranslated entries: English shows
        mo.seek(0)
        translations = Translations(mo)
    except (CatalogError, UnknownLocaleError, PoFileError, OSError, ValueError) as exc:
        raise CatalogError(f"{path}: {exc}") from None
    name = locale.get_display_name(code) or code
    return Language(code, name[:1].upper() + name[1:], locale.text_direction,
                    translations)


def _placeholders(words: str) -> set[str]:
    """The ``{name}`` fields of ``words``; ValueError if it is not a format string
    whose fields are plain names."""
    names = {name for _, name, _, _ in Formatter().parse(words) if name is not None}
    if not all(name.isidentifier() for name in names):
        raise ValueError(f"{words!r}: a placeholder is a plain name, like {{n}}")
    return names


def _check_placeholders(ids: str | Sequence[str], strings: str | Sequence[str] | None) -> None:
    """A translation may use only the placeholders of the message it translates."""
    ids = (ids,) if isinstance(ids, str) else ids
    strings = (strings,) if isinstance(strings, str) else strings or ()
    allowed = set().union(*(_placeholders(i) for i in ids))
    if not allowed:
        return  # shown as it is: braces in it are only text
    for words in strings:
        unknown = _placeholders(words or "") - allowed
        if unknown:
            raise ValueError(f"the translation of {ids[0]!r} uses {sorted(unknown)}; "
                             f"it may use {sorted(allowed)}")


@lru_cache(maxsize=8)
def _catalogs(folder: str) -> tuple[Language, ...]:
    return tuple(read_catalog(p) for p in sorted(Path(folder).glob("*.po")))


_OURS = str(resources.files("waitingroom.web") / "locales")
_ENGLISH = Language(DEFAULT, "English", "ltr", NullTranslations())


class Languages:
    """The languages of one waiting room: English, ours, and the operator's catalogs in
    ``extra_dir`` (one there for a language we have replaces ours)."""

    def __init__(self, extra_dir: str = "") -> None:
        found = {language.code: language for language in (
            _ENGLISH, *_catalogs(_OURS), *(_catalogs(extra_dir) if extra_dir else ()))}
        self.by_code: dict[str, Language] = found
        """Every language, by code: English first, then in code order."""

    def __contains__(self, code: object) -> bool:
        return code in self.by_code

    def gettext(self, lang: str, message: str, **values: object) -> str:
        """``message`` in ``lang`` (as it is if the catalog lacks it), ``values`` filled in."""
        words = self.by_code.get(lang, _ENGLISH).translations.gettext(message)
        return words.format(**values) if values else words

    def ngettext(self, lang: str, singular: str, plural: str, n: int,
                 **values: object) -> str:
        """The form for ``n`` of a message with a plural, in ``lang``; ``{n}`` and
        ``values`` filled in."""
        words = self.by_code.get(lang, _ENGLISH).translations.ngettext(singular, plural, n)
        return words.format(n=n, **values)

    def bound(self, lang: str) -> tuple[Callable[..., str], Callable[..., str]]:
        """``gettext`` and ``ngettext`` for ``lang`` alone (the templates' ``_`` and
        ``ngettext``)."""
        def gettext(message: str, **values: object) -> str:
            return self.gettext(lang, message, **values)

        def ngettext(singular: str, plural: str, n: int, **values: object) -> str:
            return self.ngettext(lang, singular, plural, n, **values)
        return gettext, ngettext

    def field_label(self, name: str, fallback: str, lang: str) -> str:
        """A capture field's label in ``lang``: ours for the usual names (``email``,
        ``postal_code``, ...), else the operator's own (``fallback``)."""
        return self.gettext(lang, FIELD_LABELS[name]) if name in FIELD_LABELS else fallback

    def field_error(self, code: str, lang: str, max_length: int = 0) -> str:
        """What was found wrong with a field (an :data:`ERRORS` code), in words; words
        that are no code (an unreadable form's) as they are."""
        message = ERRORS.get(code)
        if message is None:
            return code
        if isinstance(message, tuple):
            return self.ngettext(lang, *message, max_length)
        return self.gettext(lang, message)

    def pick(self, chosen: str | None, accept_language: str) -> str:
        """The language to answer in: ``chosen`` (switcher or cookie) if we have it,
        else the best ``Accept-Language`` match we have, else English."""
        if chosen in self.by_code:
            return chosen
        best, best_quality = DEFAULT, 0.0
        for part in accept_language.split(",")[:20]:
            tag, _, params = part.strip().partition(";")
            code = tag.strip().lower().replace("_", "-").partition("-")[0]
            quality = 1.0
            if params.strip().startswith("q="):
                try:
                    quality = float(params.strip()[2:])
                except ValueError:
                    continue
            if code in self.by_code and quality > best_quality:
                best, best_quality = code, quality
        return best
