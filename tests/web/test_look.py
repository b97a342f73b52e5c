"""The shop's own look and languages: templates an operator overrides (escaping always
on), brand files, and gettext catalogs that add a language by themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.servers import Browser, serve_in_process
from waitingroom import WaitingRoomMiddleware
from waitingroom.errors import ConfigError
from waitingroom.settings import Settings
from waitingroom.web.i18n import Languages

PACKAGE = Path(__file__).resolve().parents[2] / "waitingroom"
LOCALES = PACKAGE / "web" / "locales"
SPANISH = '''msgid ""
msgstr ""
"Language: es\\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\\n"
"Content-Type: text/plain; charset=utf-8\\n"

msgid "You're in line"
msgstr "Estás en la fila"

msgid "Your place in line"
msgstr "Tu lugar en la fila"

msgid "at most {n} character"
msgid_plural "at most {n} characters"
msgstr[0] "como máximo {n} carácter"
msgstr[1] "como máximo {n} caracteres"
'''


def extracted() -> dict[str, str | tuple[str, str]]:
    """Every message the code and templates mark, as Babel's extractor finds them."""
    found: dict[str, str | tuple[str, str]] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
            PACKAGE, [("**/templates/**.html", "jinja2"), ("**.py", "python")],
            keywords={"_": None, "ngettext": (1, 2), "N_": None, "Nn_": (1, 2)},
            options_map={"**/templates/**.html": {"extensions": ""}}):
        found[message if isinstance(message, str) else message[0]] = message
    return found


@pytest.mark.parametrize("lang", ["fr", "de"])
def test_our_catalogs_translate_every_message_the_pages_show(lang: str) -> None:
    messages = extracted()
    assert "You're in line" in messages and "at most {n} character" in messages
    with (LOCALES / f"{lang}.po").open("rb") as po:
        catalog = read_po(po)
    translated = {m.id if isinstance(m.id, str) else m.id[0]: m for m in catalog if m.id}
    missing = [m for m in messages if m not in translated or not translated[m].string
               or translated[m].fuzzy]
    assert missing == [], f"{lang}.po lacks {len(missing)}: run make catalogs, translate"
    assert set(translated) == set(messages), "obsolete entries: run make catalogs"
    for message_id, message in messages.items():
        if isinstance(message, tuple):  # a plural: every form of the language filled in
            forms = translated[message_id].string
            assert len(forms) == catalog.num_plurals and all(forms), message_id
    with (LOCALES / "messages.pot").open("rb") as pot:
        assert {m.id if isinstance(m.id, str) else m.id[0]
                for m in read_po(pot) if m.id} == set(messages), "run make catalogs"


def test_plural_rules_come_from_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "pl.po").write_text('''msgid ""
msgstr ""
"Language: pl\\n"
"Plural-Forms: nplurals=3; "
"plural=(n==1 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);\\n"

msgid "at most {n} character"
msgid_plural "at most {n} characters"
msgstr[0] "najwyżej {n} znak"
msgstr[1] "najwyżej {n} znaki"
msgstr[2] "najwyżej {n} znaków"
''', encoding="utf-8")
    languages = Languages(str(tmp_path))
    said = [languages.field_error("too_long", "pl", n) for n in (1, 3, 5, 22, 25)]
    assert said == ["najwyżej 1 znak", "najwyżej 3 znaki", "najwyżej 5 znaków",
                    "najwyżej 22 znaki", "najwyżej 25 znaków"]
    english = [languages.field_error("too_long", "en", n) for n in (1, 2)]
    assert english == ["at most 1 character", "at most 2 characters"]
    assert languages.field_error("too_long", "fr", 1) == "1 caractère au plus"


@pytest.fixture
def shop(make_room: Callable[..., WaitingRoomMiddleware]) -> Callable[..., Any]:
    """A waiting room (capacity 1, /checkout gated) around the test origin, served by
    uvicorn on loopback, with ``overrides`` in its settings."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[str]:
        async with serve_in_process(make_room(capacity=1, gated_paths=("/checkout*",),
                                              **overrides)) as url:
            yield url

    return start


async def queue_page(url: str, path: str = "/checkout", **headers: str) -> httpx.Response:
    """What the second shopper sees (the first takes the one slot)."""
    async with Browser(base_url=url) as first, \
            Browser(base_url=url, headers=headers) as second:
        assert (await first.get("/checkout")).status_code == 200
        return await second.get(path)


async def test_a_fourth_language_is_a_catalog_and_nothing_else(
    shop: Callable[..., Any], tmp_path: Path,
) -> None:
    (tmp_path / "es.po").write_text(SPANISH, encoding="utf-8")
    async with shop(locales_dir=str(tmp_path)) as url:
        page = await queue_page(url, **{"accept-language": "es-ES,es;q=0.9,en;q=0.5"})
        assert page.status_code == 200
        assert '<html lang="es" dir="ltr">' in page.text
        assert "<h1>Estás en la fila</h1>" in page.text and "Tu lugar en la fila" in page.text
        assert "Expected wait:" in page.text  # untranslated yet: the English, not a gap
        assert 'hreflang="es">Español</a>' not in page.text  # the page's own language
        french = await queue_page(url, "/checkout?lang=fr")
        assert 'href="/checkout?lang=es" lang="es" hreflang="es">Español</a>' in french.text
        assert "Vous êtes dans la file" in french.text


async def test_a_right_to_left_language_reads_right_to_left(
    shop: Callable[..., Any], tmp_path: Path,
) -> None:
    (tmp_path / "ar.po").write_text('msgid "You\'re in line"\nmsgstr "أنت في الطابور"\n',
                                    encoding="utf-8")
    async with shop(locales_dir=str(tmp_path)) as url:
        page = await queue_page(url, "/checkout?lang=ar")
    assert '<html lang="ar" dir="rtl">' in page.text and "أنت في الطابور" in page.text


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("es.po", "garbage\n", "es.po"),  # not a catalog
    ("es.po", 'msgid "at most {n} characters"\nmsgstr "{m} au plus"\n', "uses ['m']"),
    ("es.po", 'msgid "at most {n} characters"\nmsgstr "{n.__class__}"\n', "plain name"),
    ("es.po", 'msgid "at most {n} characters"\nmsgstr "{n"\n', "es.po"),
    ("spanish.po", 'msgid "x"\nmsgstr "y"\n', "name it <language code>.po"),
    ("qq.po", 'msgid "x"\nmsgstr "y"\n', "qq.po"),  # no such language
])
def test_a_catalog_that_cannot_be_used_stops_start_up_naming_it(
    make_room: Callable[..., WaitingRoomMiddleware], tmp_path: Path, name: str, text: str,
    problem: str,
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        make_room(locales_dir=str(tmp_path))
    assert refused.value.key == "locales_dir" and problem in str(refused.value)


BASE = """<!doctype html><html lang="{{ lang }}"><head><title>{% block title %}{% endblock %}
</title></head><body><header class="brand">Tom's shop · {{ brand.shop_name }}</header>
<main>{% block content %}{% endblock %}</main></body></html>"""


async def test_the_shop_brands_every_page_and_visitor_values_stay_text(
    shop: Callable[..., Any], tmp_path: Path,
) -> None:
    (tmp_path / "base.html").write_text(BASE, encoding="utf-8")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "shop.css").write_text("header{color:red}", encoding="utf-8")
    (tmp_path / "static" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>",
                                                  encoding="utf-8")
    hostile = "/checkout/<script>alert(1)</script>?q=\"><img src=x onerror=alert(2)>"
    async with shop(templates_dir=str(tmp_path), shop_name="<b>Tom</b>",
                    message="<i>soon</i>") as url:
        page = await queue_page(url, hostile)
        async with Browser(base_url=url) as client:
            css = await client.get("/_wr/brand/shop.css")
            svg = await client.get("/_wr/brand/logo.svg")
            missing = await client.get("/_wr/brand/../settings.py")
            status = await client.get("/_wr/status-page")
    assert '<header class="brand">Tom\'s shop · &lt;b&gt;Tom&lt;/b&gt;</header>' in page.text
    assert "<h1>You're in line</h1>" not in page.text and "You&#39;re in line" in page.text
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;i&gt;soon&lt;/i&gt;" in page.text
    assert 'id="wr-position">' in page.text  # our content block, in their frame
    assert "Tom's shop" in status.text  # every page, not just the queue
    assert css.text == "header{color:red}" and css.headers["content-type"].startswith("text/css")
    assert svg.headers["content-security-policy"] == "sandbox"
    assert svg.headers["x-content-type-options"] == "nosniff"
    assert missing.status_code in (400, 404)


async def test_the_stylesheet_and_logo_settings_reach_every_page(
    shop: Callable[..., Any], tmp_path: Path,
) -> None:
    async with shop(stylesheet="/_wr/brand/shop.css", logo="/static/logo.png",
                    shop_name="Tom & Jo") as url:
        page = await queue_page(url)
        async with Browser(base_url=url) as client:
            status = await client.get("/_wr/status-page")
    for html in (page.text, status.text):
        assert '<link rel="stylesheet" href="/_wr/brand/shop.css">' in html
        # The name follows as text: the logo is not read out as the name a second time.
        assert '<img src="/static/logo.png" alt="">' in html
        assert html.count('<p class="shop">Tom &amp; Jo</p>') == 1  # every page, once


@pytest.mark.parametrize(("template", "problem"), [
    ("{{ message|safe }}", "'|safe' is not allowed"),
    ("{% autoescape false %}{{ message }}{% endautoescape %}", "not allowed"),
    ("{{ shoe_size }}", "shoe_size"),  # a name no page is given: found now, not live
    ("{% if %}", "queue.html"),  # does not parse
    ("{{ position + 1 }}", "TypeError"),  # a live value is text, placed after building
])
def test_a_template_that_could_turn_escaping_off_or_fail_stops_start_up(
    make_room: Callable[..., WaitingRoomMiddleware], tmp_path: Path, template: str, problem: str,
) -> None:
    (tmp_path / "queue.html").write_text(template, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        make_room(templates_dir=str(tmp_path))
    assert refused.value.key == "templates_dir" and problem in str(refused.value)


@pytest.mark.parametrize(("files", "problem"), [
    ({"run.js": "alert(1)"}, "run.js"),  # not a brand file type
    ({"a b.css": ""}, "a b.css"),
])
def test_brand_files_are_plain_known_types(
    make_room: Callable[..., WaitingRoomMiddleware], tmp_path: Path, files: dict[str, str],
    problem: str,
) -> None:
    (tmp_path / "static").mkdir()
    for name, text in files.items():
        (tmp_path / "static" / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        make_room(templates_dir=str(tmp_path))
    assert refused.value.key == "templates_dir" and problem in str(refused.value)


@pytest.mark.parametrize(("key", "value"), [
    ("stylesheet", "https://elsewhere.example/x.css"), ("stylesheet", "//cdn/x.css"),
    ("logo", "javascript:alert(1)"), ("logo", '/x"onerror="alert(1)'.replace('"', " ")),
    ("templates_dir", "/no/such/folder"), ("locales_dir", "/no/such/folder"),
])
def test_look_settings_are_checked_at_start_up(
    make_settings: Callable[..., Settings], key: str, value: str,
) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(**{key: value})
    assert refused.value.key == key


def test_the_empty_capture_form_is_built_once_and_each_visitor_gets_their_own() -> None:
    from waitingroom.capture.form_pages import capture_page
    from waitingroom.fields import parse_fields
    from waitingroom.status import Status
    from waitingroom.web.renderer import Pages

    pages, fields = Pages(), parse_fields("name:text:required,email:email:required")

    def form(csrf: str, position: int | None, **answer: Any) -> str:
        return capture_page(pages, fields, csrf=csrf, lang="de", here="/checkout",
                            status=Status("r", "capture", position=position), **answer
                            ).decode()

    ann = form("token-ann", 3, values={"name": "Ann <x>"}, errors={"email": "required"})
    bob, cy, di = form("token-bob", 8), form("token-cy&", 12), form("token-di", None)
    assert 'value="token-bob"' in bob and "Nummer 8." in bob and "token-ann" not in bob
    assert 'value="token-cy&amp;"' in cy and "Nummer 12." in cy and "Nummer 8" not in cy
    assert "Nummer" not in di  # no place in line: nothing said about one
    assert "Ann" not in bob + cy + di  # one visitor's answer is never kept for another
    assert 'value="Ann &lt;x&gt;"' in ann and "Dieses Feld ist erforderlich." in ann


def test_a_queue_page_its_script_cannot_update_is_pointed_out_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    from waitingroom.web.renderer import Pages

    (tmp_path / "queue.html").write_text(
        '{% extends "base.html" %}{% block content %}<p>{{ position }}</p>{% endblock %}',
        encoding="utf-8")
    with caplog.at_level("WARNING", logger="waitingroom"):
        Pages(templates_dir=str(tmp_path))
        Pages()  # ours: nothing to say
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and 'id="wr-card"' in said[0] and "queue.js" in said[0]


def test_the_page_bench_still_builds_every_page_it_times() -> None:
    """``loadtests/bench_pages.py`` times the pages' own code (a page given a value it
    no longer takes would fail here, not on the day someone measures)."""
    import subprocess
    import sys

    bench = PACKAGE.parent / "loadtests" / "bench_pages.py"
    result = subprocess.run([sys.executable, str(bench), "--rounds", "1"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode in (0, 1), result.stderr  # 1: a goal missed on a busy host
    assert "whole template each time" in result.stdout
    assert "built each time" in result.stdout
