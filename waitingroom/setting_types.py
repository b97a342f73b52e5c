"""The kinds of value settings take, each with its check and the words saying what is
wrong: whole numbers, comma-separated lists, URLs, paths, secrets, timeline steps.
They read a value as a file, a variable or a flag writes it."""

from __future__ import annotations

import json
import re
import ssl
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field

from waitingroom.fields import parse_fields
from waitingroom.tls import tls_context

ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster",
                 "redis+sentinel")
MIN_SECRET_LENGTH = 16


def _whole(raw: Any) -> Any:
    """A whole number as written in a file, a variable or a flag (never true/false, never
    2.0)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"must be a whole number, got {raw!r}")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"must be a whole number, got {raw!r}") from None


_FLAGS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


def _flag(raw: Any) -> Any:
    """true or false as written (true/false, yes/no, on/off, 1/0, any case)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _FLAGS:
        return _FLAGS[raw.strip().lower()]
    raise ValueError(f"must be true or false, got {raw!r}")


def _number(raw: Any) -> Any:
    if isinstance(raw, bool):
        raise ValueError(f"must be a number, got {raw!r}")
    return raw


def _items(raw: Any) -> Any:
    """A list from a comma-separated text (``a, b``) or a list; blanks dropped."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if isinstance(items, list | tuple) and all(isinstance(i, str) for i in items):
        return tuple(i.strip() for i in items if i.strip())
    return raw


def epoch_ms(text: str) -> int:
    """An ISO 8601 time with its zone (``2026-11-23T09:00:00Z``) in epoch ms;
    ValueError saying what is wrong otherwise."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-23T09:00:00Z"
                         ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone, e.g. 2026-11-23T09:00:00Z")
    return int(moment.timestamp() * 1000)


def _steps(raw: Any) -> Any:
    """Timeline steps from JSON text or a file's tables: (epoch ms, changes as JSON)."""
    if isinstance(raw, tuple):
        return raw  # already held so
    try:
        steps = (json.loads(raw) if raw.strip() else []) if isinstance(raw, str) else raw
    except ValueError:
        steps = None
    if not isinstance(steps, list) or not all(
            isinstance(step, dict) and isinstance(step.get("at"), str | int)
            and not isinstance(step["at"], bool) and len(step) > 1 for step in steps):
        raise ValueError("must be a list of steps, each an at (ISO 8601 time with its zone) "
                         "and the live settings to change then")
    return tuple((epoch_ms(at) if isinstance(at := step["at"], str) else at,
                  json.dumps({k: v for k, v in step.items() if k != "at"}, sort_keys=True))
                 for step in steps)


def _checked(test: Any, problem: str) -> AfterValidator:
    """A check of a value read: ``test(value)`` true, or ``problem`` names what is wrong."""
    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(problem)
        return value
    return AfterValidator(check)


def _web_url(url: str) -> bool:
    parts = urlsplit(url)
    return not url or (parts.scheme in ("http", "https") and bool(parts.hostname))


def _redis_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in REDIS_SCHEMES and (
        parts.scheme != "redis+sentinel" or bool(parts.path.strip("/")))


def _site_path(path: str) -> bool:
    return not path or (path.startswith("/") and not path.startswith("//") and "\\" not in path
                        and len(path) <= 200 and all(32 < ord(c) < 127 for c in path))


def _public_url(url: str) -> bool:
    parts = urlsplit(url)
    return not url or (parts.scheme in ("http", "https") and bool(parts.hostname)
                       and url.isascii() and parts.path in ("", "/")
                       and not (parts.query or parts.fragment or parts.username))


def _pem(path: str) -> str:
    if path:
        try:
            tls_context(path)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot be read as PEM certificates: {exc}") from exc
    return path


def _capture_form(spec: str) -> str:
    parse_fields(spec)  # its ValueError says what is wrong
    return spec


Whole = Annotated[int, BeforeValidator(_whole)]
Number = Annotated[float, BeforeValidator(_number)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Items = Annotated[tuple[str, ...], BeforeValidator(_items)]
Paths = Annotated[Items, _checked(lambda ps: all(p.startswith("/") for p in ps),
                                  "each pattern must start with /")]
WebUrl = Annotated[str, _checked(_web_url, "must be an http:// or https:// URL")]
SitePath = Annotated[str, _checked(_site_path, "a path on this site, like "
                                   "/_wr/brand/shop.css (at most 200 characters)")]
Folder = Annotated[str, _checked(lambda f: not f or Path(f).is_dir(), "is not a folder")]
Secrets = Annotated[Items, _checked(
    lambda keys: all(len(k) >= MIN_SECRET_LENGTH for k in keys),
    f"each secret needs at least {MIN_SECRET_LENGTH} characters")]
Tokens = Annotated[Items, _checked(
    lambda tokens: all(len(t.rpartition(":")[2]) >= MIN_SECRET_LENGTH for t in tokens),
    f"each token needs at least {MIN_SECRET_LENGTH} characters")]
Timeline = Annotated[tuple[tuple[int, str], ...], BeforeValidator(_steps)]
Seconds = Annotated[Number, Field(gt=0)]
AtLeastOne = Annotated[Whole, Field(ge=1)]
Share = Annotated[Number, Field(gt=0, le=1)]
RoomName = Annotated[str, _checked(ROOM_NAME.fullmatch,
                                   "lowercase letters, digits and dashes, at most 32")]
RedisUrl = Annotated[str, _checked(_redis_url, (
    "must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL "
    "(a redis+sentinel:// URL names its service: "
    "redis+sentinel://host:26379[,host:26379]/service[/db])"))]
StatusCode = Annotated[Literal[200, 429, 503], BeforeValidator(_whole)]
PemFile = Annotated[str, AfterValidator(_pem)]
CaptureForm = Annotated[str, AfterValidator(_capture_form)]
PublicUrl = Annotated[str, _checked(_public_url, (
    "must be http(s)://host[:port] (a name in ASCII: punycode), with no path, query "
    "or user"))]
SmtpUrl = Annotated[str, _checked(
    lambda url: not url or (urlsplit(url).scheme == "smtp" and bool(urlsplit(url).hostname)),
    "must be smtp://host:port")]
