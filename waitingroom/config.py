"""Reading :class:`~waitingroom.settings.Settings` from its sources, later ones
winning: defaults, a TOML file (``--config``), environment variables
``WAITINGROOM_<NAME>``, command-line flags. A bad value raises
:class:`~waitingroom.errors.ConfigError` naming the key as the operator wrote it
(``WAITINGROOM_CAPACITY``, ``--capacity`` or ``capacity (in room.toml)``).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from waitingroom import settings as settings_module
from waitingroom.errors import ConfigError
from waitingroom.settings import ENV_PREFIX, Settings


def _as_int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError
    return int(raw)


def _as_float(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError
    return float(raw)


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _BOOLEANS:
        return _BOOLEANS[raw.strip().lower()]
    raise ValueError


_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}


def _as_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError
    return raw


def _as_tuple(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError
    return tuple(i.strip() for i in items if i.strip())


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


def _as_timeline(raw: Any) -> tuple[tuple[int, str], ...]:
    steps = (json.loads(raw) if raw.strip() else []) if isinstance(raw, str) else raw
    if not isinstance(steps, list) or not all(
            isinstance(step, dict) and isinstance(step.get("at"), str | int)
            and not isinstance(step["at"], bool) and len(step) > 1 for step in steps):
        raise ValueError
    return tuple((epoch_ms(at) if isinstance(at := step["at"], str) else at,
                  json.dumps({k: v for k, v in step.items() if k != "at"}, sort_keys=True))
                 for step in steps)


def environment_value(value: Any) -> str:
    """A setting's value as its ``WAITINGROOM_<NAME>`` variable gives it (for worker
    processes that rebuild the settings from the environment)."""
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):  # timeline
        return json.dumps([{"at": at_ms, **json.loads(changes)} for at_ms, changes in value])
    return ",".join(value) if isinstance(value, tuple) else str(value)


_PARSERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "int": (_as_int, "a whole number"),
    "float": (_as_float, "a number"),
    "str": (_as_str, "text"),
    "bool": (_as_bool, "true or false"),
    "tuple[str, ...]": (_as_tuple, "a comma-separated list"),
    "tuple[tuple[int, str], ...]": (
        _as_timeline, "a list of steps, each an at (ISO 8601 time with its zone) and the "
        "live settings to change then"),
}
_FIELDS = {f.name: _PARSERS[str(f.type)] for f in dataclasses.fields(Settings)}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
) -> Settings:
    """Build :class:`Settings` from a TOML file, ``WAITINGROOM_*`` variables and flags.

    ``flags`` maps field names to values already given on the command line (``None``
    means not given). Unknown keys in the file or flags are errors, so a typo is not
    silently ignored; unknown environment variables are left alone.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}

    def take(name: str, raw: Any, label: str) -> None:
        if name not in _FIELDS:
            raise ConfigError(label, "is not a setting")
        parse, kind = _FIELDS[name]
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            why = f" ({exc})" if str(exc) else ""
            raise ConfigError(label, f"must be {kind}, got {raw!r}{why}") from None
        labels[name] = label

    if config_file is not None:
        path = Path(config_file)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc}") from exc
        for name, raw in table.items():
            take(name, raw, f"{name} (in {path.name})")
    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            take(name, environ[env_name], env_name)
    for name, raw in (flags or {}).items():
        if raw is not None:
            take(name, raw, "--" + name.replace("_", "-"))
    try:
        return Settings(**values)
    except ConfigError as exc:
        raise ConfigError(labels.get(exc.key, exc.key), exc.problem) from None


@cache
def setting_help() -> dict[str, str]:
    """Each setting's docstring, by name, as plain text (for ``serve --help``)."""
    tree = ast.parse(Path(settings_module.__file__).read_text(encoding="utf-8"))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings").body
    docs = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)):
            docs[node.target.id] = " ".join(str(after.value.value).replace("``", "").split())
    return docs
