"""Settings: sources, precedence, and start-up errors that name the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from waitingroom.config import load_settings
from waitingroom.errors import ConfigError

GOOD_SECRET = "0123456789abcdef-secret"


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text('capacity = 10\nroom = "iphone"\nopen_paths = ["/login", "/static/*"]\n')
    settings = load_settings({"capacity": "30"}, config_file=config,
                             environ={"WAITINGROOM_CAPACITY": "20",
                                      "WAITINGROOM_GRACE_SECONDS": "90"})
    assert (settings.capacity, settings.room, settings.grace_seconds) == (30, "iphone", 90)
    assert settings.open_paths == ("/login", "/static/*")


def test_secrets_are_newest_first_and_never_printed() -> None:
    settings = load_settings(environ={"WAITINGROOM_SECRET": f"{GOOD_SECRET}1, {GOOD_SECRET}2"})
    assert settings.secret == (f"{GOOD_SECRET}1", f"{GOOD_SECRET}2")
    assert GOOD_SECRET not in repr(settings)


@pytest.mark.parametrize(("source", "key"), [
    ({"environ": {"WAITINGROOM_CAPACITY": "lots"}}, "WAITINGROOM_CAPACITY"),
    ({"environ": {"WAITINGROOM_CAPACITY": "0"}}, "WAITINGROOM_CAPACITY"),
    ({"flags": {"port": "70000"}}, "--port"),
    ({"flags": {"room": "Bad Room!"}}, "--room"),
    ({"flags": {"origin": "ftp://x"}}, "--origin"),
    ({"flags": {"no_such_thing": "1"}}, "--no-such-thing"),
    ({"environ": {"WAITINGROOM_SECRET": "short"}}, "WAITINGROOM_SECRET"),
    ({"environ": {"WAITINGROOM_GATED_PATHS": "checkout"}}, "WAITINGROOM_GATED_PATHS"),
    ({"environ": {"WAITINGROOM_REDIS_URL": "redis+sentinel://h:26379"}},
     "WAITINGROOM_REDIS_URL"),
    ({"environ": {"WAITINGROOM_POW_DIFFICULTY": "40"}}, "WAITINGROOM_POW_DIFFICULTY"),
    ({"environ": {"WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK": "-1"}},
     "WAITINGROOM_NEW_PLACES_PER_MINUTE_PER_NETWORK"),
    ({"flags": {"origin_ca_file": "/no/such/ca.pem"}}, "--origin-ca-file"),
    ({"flags": {"origin_ca_file": __file__}}, "--origin-ca-file"),  # not PEM
])
def test_bad_values_name_their_key(source: dict[str, dict[str, str]], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(source.get("flags"), environ=source.get("environ", {}))
    assert str(caught.value).startswith(key + ":")


def test_a_redis_cluster_url_is_accepted() -> None:
    settings = load_settings(environ={"WAITINGROOM_REDIS_URL": "redis+cluster://10.0.0.5:6379"})
    assert settings.redis_url == "redis+cluster://10.0.0.5:6379"


def test_bad_file_values_name_the_file(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text("capacity = true\n")
    with pytest.raises(ConfigError, match=r"^capacity \(in room.toml\): must be a whole number"):
        load_settings(config_file=config, environ={})
    config.write_text("capacity = \n")
    with pytest.raises(ConfigError, match=r"^--config: cannot read"):
        load_settings(config_file=config, environ={})


@pytest.mark.parametrize(("args", "env", "expected"), [
    (["--origin", "http://127.0.0.1:1", "--capacity", "-3"], {"WAITINGROOM_SECRET": GOOD_SECRET},
     "waitingroom: --capacity: must be at least 1"),
    (["--origin", "http://127.0.0.1:1"], {}, "waitingroom: WAITINGROOM_SECRET: is required"),
    ([], {"WAITINGROOM_SECRET": GOOD_SECRET}, "waitingroom: WAITINGROOM_ORIGIN: is required"),
])
def test_serve_refuses_to_start_and_says_why(args: list[str], env: dict[str, str],
                                              expected: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WAITINGROOM_")}
    result = subprocess.run([sys.executable, "-m", "waitingroom.cli", "serve", *args],
                            env={**clean, **env}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith(expected)
    assert "Traceback" not in result.stderr
