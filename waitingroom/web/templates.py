"""The Jinja2 templates every visitor page is rendered from, ours or the operator's, and
the operator's brand: their stylesheet, logo and files.

An operator's ``templates_dir`` holds templates named as ours (``base.html`` brands every
page; ``queue.html`` the queue page ...), each replacing ours, and a ``static/`` folder
served under ``/_wr/brand/``. Escaping is always on and cannot be turned off (a template
using ``|safe`` or ``{% autoescape false %}`` fails at start-up), so no visitor-supplied
value can ever become markup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    TemplateError,
    nodes,
)

BRAND_PREFIX = "/_wr/brand/"
"""Where the files in the operator's ``templates_dir/static/`` are served."""
_BRAND_TYPES = {".css": b"text/css; charset=utf-8", ".png": b"image/png",
                ".jpg": b"image/jpeg", ".jpeg": b"image/jpeg", ".webp": b"image/webp",
                ".gif": b"image/gif", ".svg": b"image/svg+xml", ".ico": b"image/x-icon",
                ".woff2": b"font/woff2", ".woff": b"font/woff"}
_BRAND_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_BRAND_FILE_BYTES = 1024 * 1024
_BRAND_FILES = 100


class TemplatesError(ValueError):
    """An operator's template or brand file that cannot be used: which, and why."""


@dataclass(frozen=True, slots=True)
class Brand:
    """The shop's own look on every visitor page."""

    shop_name: str = ""
    stylesheet: str = ""
    """A path on this site of a stylesheet linked after ours (e.g. ``/_wr/brand/shop.css``)."""
    logo: str = ""
    """A path on this site of an image shown at the top of every page."""


def environment(templates_dir: str = "") -> Environment:
    """The templates: the operator's in ``templates_dir`` first, then ours. Autoescaped,
    and strict: a name a template uses but is not given is an error, found at start-up."""
    ours = PackageLoader("waitingroom.web", "templates")
    loader = ChoiceLoader([FileSystemLoader(templates_dir), ours]) if templates_dir else ours
    return Environment(loader=loader, autoescape=True, undefined=StrictUndefined,
                       auto_reload=False)


def check_escaping(env: Environment, templates_dir: str) -> None:
    """Refuse an operator's template that can turn escaping off, or does not parse, and
    any link in the folder (it could serve a file from outside it as a page)."""
    folder = Path(templates_dir)
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise TemplatesError(f"{path}: a link; templates and brand files are the "
                                 "shop's own regular files")
        if not path.is_file() or name.startswith("static/"):
            continue
        try:
            tree = env.parse(path.read_text(encoding="utf-8"), name, str(path))
        except (TemplateError, OSError, UnicodeDecodeError) as exc:
            raise TemplatesError(f"{path}: {exc}") from None
        for node in tree.find_all((nodes.Filter, nodes.EvalContextModifier)):
            if isinstance(node, nodes.Filter) and node.name == "safe":
                raise TemplatesError(f"{path}, line {node.lineno}: '|safe' is not allowed "
                                     "(escaping cannot be turned off)")
            if isinstance(node, nodes.EvalContextModifier) and any(
                    option.key == "autoescape" for option in node.options):
                raise TemplatesError(f"{path}, line {node.lineno}: '{{% autoescape %}}' is "
                                     "not allowed (escaping cannot be turned off)")


def brand_files(templates_dir: str) -> dict[str, tuple[bytes, bytes]]:
    """The files in ``templates_dir/static/`` by name: (body, content type), read once.
    Only regular files (a link, which could lead out of the folder, stops start-up) with
    plain names of known types, each at most 1 MiB, at most 100 of them."""
    folder = Path(templates_dir) / "static"
    if not templates_dir or not folder.is_dir():
        return {}
    if folder.is_symlink():
        raise TemplatesError(f"{folder}: a link, not a folder of the shop's own")
    found: dict[str, tuple[bytes, bytes]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        content_type = _BRAND_TYPES.get(path.suffix.lower())
        if (path.is_symlink() or not path.is_file() or content_type is None
                or not _BRAND_NAME.fullmatch(path.name)):
            raise TemplatesError(f"{path}: brand files are regular files (not links) named "
                                 f"with letters, digits, '.', '_' and '-', of a type among "
                                 f"{', '.join(sorted(_BRAND_TYPES))}")
        body = path.read_bytes()
        if len(body) > _BRAND_FILE_BYTES:
            raise TemplatesError(f"{path}: larger than 1 MiB")
        found[path.name] = (body, content_type)
    if len(found) > _BRAND_FILES:
        raise TemplatesError(f"{folder}: more than {_BRAND_FILES} files")
    return found
