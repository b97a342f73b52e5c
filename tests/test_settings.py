"""Settings: sources, precedence, and start-up errors that name the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from waitingroom.config import environment_value, load_settings
from waitingroom.errors import ConfigError
from waitingroom.settings import ENV_PREFIX, Settings

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


@pytest.mark.parametrize(("environ", "expected"), [
    ({"WAITINGROOM_PORT": "70000"}, "WAITINGROOM_PORT: must be 1-65535"),
    ({"WAITINGROOM_CAPACITY": "2.5"}, "WAITINGROOM_CAPACITY: must be a whole number, got '2.5'"),
    ({"WAITINGROOM_CAPTURE": "maybe"}, "WAITINGROOM_CAPTURE: must be auto, on or off, got 'maybe'"),
    ({"WAITINGROOM_NETWORK_SHARE": "0"},
     "WAITINGROOM_NETWORK_SHARE: must be above 0 and at most 1"),
    ({"WAITINGROOM_SHOP_NAME": "x" * 101}, "WAITINGROOM_SHOP_NAME: at most 100 characters"),
    ({"WAITINGROOM_SESSION_IDLE_SECONDS": "3600"},  # past the maximum's default
     "session_max_seconds: must be at least session_idle_seconds"),
    ({"WAITINGROOM_LEAVE_BEACON": "perhaps"},
     "WAITINGROOM_LEAVE_BEACON: must be true or false, got 'perhaps'"),
    ({"WAITINGROOM_NETWORK_SHARE": "abc"},  # a type error said as such, not the bounds
     "WAITINGROOM_NETWORK_SHARE: must be a number, got 'abc'"),
])

def test_each_problem_is_said_in_words(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert str(caught.value) == expected


def test_numbers_and_flags_are_read_as_written() -> None:
    settings = load_settings(environ={"WAITINGROOM_CAPACITY": " +1_000 ",
                                      "WAITINGROOM_LEAVE_BEACON": " Off "})
    assert (settings.capacity, settings.leave_beacon) == (1000, False)
    for environ in ({"WAITINGROOM_SESSION_RENEWAL": "t"}, {"WAITINGROOM_CAPACITY": "2.0"}):
        with pytest.raises(ConfigError):
            load_settings(environ=environ)


def test_a_secret_is_never_echoed_in_an_error(tmp_path: Path) -> None:
    config = tmp_path / "room.toml"
    config.write_text('secret = 12345678901234567890\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=config, environ={})
    assert str(caught.value).startswith("secret (in room.toml): must be")
    assert "1234" not in str(caught.value)


def test_settings_built_in_code_name_the_key_too() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(capacity=0)
    assert (caught.value.key, caught.value.problem) == ("capacity", "must be at least 1")


def test_every_setting_survives_the_trip_through_the_environment() -> None:
    """``serve`` hands its settings to worker processes as ``WAITINGROOM_*`` variables:
    every setting, set away from its default, comes back the same."""
    changed = {"room": "launch", "origin": "http://shop:8001", "port": 8100, "workers": 2,
               "capacity": 7, "api_wait_status": 503, "network_share": 0.25,
               "secret": (GOOD_SECRET + "1", GOOD_SECRET + "2"), "leave_beacon": False,
               "gated_paths": ("/checkout*", "/cart"), "capture": "on",
               "timeline": ((1_800_000_000_000, '{"capacity": 3}'),),
               "redis_down": "passes", "message": "Doors, at nine"}
    settings = Settings(**changed)
    environ = {ENV_PREFIX + name.upper(): environment_value(getattr(settings, name))
               for name in Settings.model_fields}
    assert load_settings(environ=environ) == settings
