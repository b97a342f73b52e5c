"""The ``waitingroom`` command as an operator meets it: help that explains every
flag, mistakes answered by the subcommand in one line, and ``serve`` saying where it
listens and whether Redis answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import SECRET
from waitingroom.cli import main
from waitingroom.settings import SECRET_SETTINGS, Settings
from waitingroom.tools.redis_server import free_port


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waitingroom.cli", *args], text=True,
                          capture_output=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_serve_help_describes_every_flag_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    docs = Settings.help_texts()
    for name in Settings.model_fields:
        flag = "--" + name.replace("_", "-")
        if name in SECRET_SETTINGS:
            assert flag + " " not in text  # secrets never on the command line
            continue
        assert flag in text, flag
        assert docs[name].split(".")[0][:40] in text, name  # its own words
    assert "VALUE" not in text and "(default: ())" not in text
    assert "--capacity N Concurrent sessions" in text and "(default: 100)" in text
    assert "--gated-paths A,B" in text and "(default: none)" in text


def test_every_setting_has_a_description() -> None:
    assert all(len(text) > 10 for text in Settings.help_texts().values())


def test_the_top_level_help_has_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out


def test_a_mistyped_flag_is_answered_by_its_subcommand() -> None:
    result = _run("serve", "--capcity", "5")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: waitingroom serve")
    assert "unrecognized arguments: --capcity 5" in result.stderr


def test_a_missing_secret_names_where_it_may_come_from() -> None:
    result = _run("serve", "--origin", "http://127.0.0.1:9",
                  env={"WAITINGROOM_SECRET": ""})
    assert result.returncode == 2
    assert "WAITINGROOM_SECRET: is required (or secret in the config file)" in result.stderr
    assert "--secret" not in result.stderr


def test_serve_says_where_it_listens_and_that_redis_is_out_of_reach() -> None:
    port = free_port()
    env = {"WAITINGROOM_SECRET": SECRET, "WAITINGROOM_ORIGIN": "http://127.0.0.1:9",
           "WAITINGROOM_REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0"}
    with subprocess.Popen([sys.executable, "-m", "waitingroom.cli", "serve", "--port",
                           str(port)], stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **env}) as serve:
        try:
            assert serve.stderr is not None
            line = serve.stderr.readline()
        finally:
            serve.terminate()
            serve.wait(timeout=30)
    assert f"listening on http://127.0.0.1:{port}" in line
    assert "room default, capacity 100" in line and "NOT reachable" in line
    assert "hunter2" not in line  # the password is not printed


def test_serve_on_a_taken_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("serve", "--port", str(port), "--origin", "http://127.0.0.1:9",
                      env={"WAITINGROOM_SECRET": SECRET})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "already in use" in result.stderr


def test_an_admin_error_is_shown_as_its_message() -> None:
    from waitingroom.ops.admin_cli import _problem

    assert _problem(b'{"error": "the admin API is off: set X"}') == "the admin API is off: set X"
    assert _problem(b"<html>bad gateway</html>") == "<html>bad gateway</html>"


def test_admin_message_per_language_is_sent_as_messages() -> None:
    import argparse

    from waitingroom.ops.admin_cli import _message

    german = argparse.Namespace(clear=False, text=["Ab", "neun"], lang="de")
    assert _message(german) == {"messages": {"de": "Ab neun"}}
    main_one = argparse.Namespace(clear=True, text=[], lang=None)
    assert _message(main_one) == {"message": ""}
