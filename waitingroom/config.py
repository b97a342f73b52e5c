"""Reading :class:`~waitingroom.settings.Settings` from its sources, later ones
winning: defaults, a TOML file (``--config``), environment variables
``WAITINGROOM_<NAME>``, command-line flags. A bad value raises
:class:`~waitingroom.errors.ConfigError` naming the key as the operator wrote it
(``WAITINGROOM_CAPACITY``, ``--capacity`` or ``capacity (in room.toml)``).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from waitingroom.errors import ConfigError
from waitingroom.settings import ENV_PREFIX, Settings


def environment_value(value: Any) -> str:
    """A setting's value as its ``WAITINGROOM_<NAME>`` variable gives it (for worker
    processes that rebuild the settings from the environment)."""
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):  # timeline
        return json.dumps([{"at": at_ms, **json.loads(changes)} for at_ms, changes in value])
    return ",".join(value) if isinstance(value, tuple) else str(value)


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
        if name not in Settings.model_fields:
            raise ConfigError(label, "is not a setting")
        values[name], labels[name] = raw, label

    if config_file is not None:
        path = Path(config_file)
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc}") from exc
        for name, raw in table.items():
            take(name, raw, f"{name} (in {path.name})")
    for name in Settings.model_fields:
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
