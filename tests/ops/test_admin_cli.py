"""``waitingroom admin`` as ops use it: a line by default and the whole answer with
``--json``; a question before a change that turns shoppers away or lets everyone in
when a person is at the terminal (a pseudo-terminal here), none without one; times in
the past refused; every language's message cleared; exit 130 on Ctrl-C."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import TOKEN
from tests.servers import admin, cli, waitingroom_serve
from waitingroom.ops.admin_summary import audit_line, room_line, step_line, utc
from waitingroom.tools.redis_server import RedisServer, free_port

ENV = {**os.environ, "WAITINGROOM_ADMIN_TOKEN": TOKEN}
CLOSE_QUESTION = "Take no new places in the configured room (the line drains)? [y/N] "


@pytest.fixture(scope="module")
def url(redis_server: RedisServer) -> Iterator[str]:
    """One room, served by its own process, for this module's commands."""
    from tests.conftest import SECRET

    env = {"WAITINGROOM_REDIS_URL": redis_server.url,
           "WAITINGROOM_SECRET": SECRET, "WAITINGROOM_ROOM": "admin-cli",
           "WAITINGROOM_CAPACITY": "20", "WAITINGROOM_ORIGIN": "http://127.0.0.1:9",
           "WAITINGROOM_ADMIN_TOKEN": f"alice:{TOKEN}"}
    with waitingroom_serve(env) as served:
        yield served


def test_answers_are_a_line_by_default_and_whole_with_json(url: str) -> None:
    cli(url, "capacity", "20")
    shown = admin(url, "show")
    assert shown.returncode == 0 and shown.stdout.count("\n") == 1, shown.stdout
    assert re.fullmatch(r"admin-cli: normal, \d+ of 20 in \(fixed\), \d+ waiting, "
                        r"breaker \w+.*\n", shown.stdout), shown.stdout
    whole = json.loads(admin(url, "show", "--json").stdout)
    assert whole["config"]["capacity"] == 20 and whole["room"] == "admin-cli"
    sold_out = admin(url, "stock", "0")
    assert sold_out.returncode == 0 and "SOLD OUT" in sold_out.stdout  # no terminal: no question
    cli(url, "stock", "off")
    audit = admin(url, "audit").stdout.splitlines()
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?Z alice update: stock 0 -> off",
                            line) for line in audit), audit


def test_times_in_the_past_are_refused_unless_now_is_said(url: str) -> None:
    for command in ("plan", "schedule"):
        args = ["capacity=5"] if command == "plan" else []
        refused = admin(url, command, "--at", "2020-01-01T00:00:00Z", *args)
        assert refused.returncode == 2  # a command line that cannot be sent
        assert "2020-01-01 00:00Z is in the past: --now to apply it at once" in refused.stderr
    assert cli(url, "timeline")["steps"] == []
    planned = admin(url, "plan", "--now", "capacity=19")
    assert planned.returncode == 0 and planned.stdout.startswith("planned ")
    assert ": capacity=19 " in planned.stdout and planned.stdout.endswith("(alice)\n")
    late = subprocess.run(  # the API, asked directly for a step an hour ago
        [sys.executable, "-c", "import json, sys, urllib.request, urllib.error\n"
         "r = urllib.request.Request(sys.argv[1] + '/_wr/admin/timeline', method='POST',"
         " data=json.dumps({'at_ms': int(sys.argv[2]), 'changes': {'capacity': 3}}).encode(),"
         " headers={'Authorization': 'Bearer ' + sys.argv[3]})\n"
         "try: urllib.request.urlopen(r)\n"
         "except urllib.error.HTTPError as e: print(e.code, e.read().decode())",
         url, str(int(time.time() * 1000) - 3_600_000), TOKEN],
        capture_output=True, text=True, timeout=30)
    assert late.stdout.startswith("400 ") and "at_ms is in the past" in late.stdout


def test_clearing_the_message_clears_it_in_every_language(url: str) -> None:
    cli(url, "message", "Back", "at", "nine")
    cli(url, "message", "--lang", "de", "Ab", "neun")
    cli(url, "message", "--lang", "fr", "Retour", "à", "neuf")
    assert "(+de, fr)" in admin(url, "show").stdout
    cli(url, "message", "--lang", "fr", "--clear")  # that language only
    assert cli(url, "show")["config"]["messages"] == {"de": "Ab neun"}
    cli(url, "message", "--clear")
    config = cli(url, "show")["config"]
    assert config["message"] == "" and config["messages"] == {}
    told = admin(url, "message")
    assert told.returncode == 2 and "give the text, or --clear" in told.stderr


def test_bad_numbers_are_refused_before_anything_is_sent(url: str) -> None:
    for args in (("capacity", "0"), ("capacity", "-5"), ("rate", "-1"),
                 ("adaptive", "--min", "0", "--max", "3")):
        refused = admin(url, *args)
        assert refused.returncode == 2 and "a whole number" in refused.stderr, args
    assert cli(url, "show")["config"]["capacity"] > 0


class Terminal:
    """``waitingroom admin`` run at a pseudo-terminal, as a person would."""

    def __init__(self, url: str, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "waitingroom.cli", "admin", "--url", url, *args],
            env=ENV, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.seen = ""

    def wait_for(self, text: str, within: float = 20) -> None:
        """Read what the command writes until ``text`` appears."""
        deadline = time.monotonic() + within
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {text!r}; saw {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the command ended and its side closed
                    assert text in self.seen, f"never saw {text!r}; saw {self.seen!r}"

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def interrupt(self) -> None:
        """Ctrl-C, again until it is heard: Python only notes a signal that lands
        between writing the prompt and starting to read, and reads on (a person's
        second press; on a busy machine the window is wide enough to hit)."""
        for _ in range(40):
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=0.5)
                return
            except subprocess.TimeoutExpired:
                continue

    def ended(self) -> int:
        """The exit code, once all it wrote has been read."""
        code = self.process.wait(timeout=30)
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # its side is closed: nothing more to read
                break
            if not chunk:
                break
            self.seen += chunk.decode(errors="replace")
        os.close(self.master)
        return code


def test_at_a_terminal_a_dangerous_change_is_asked_about_first(url: str) -> None:
    cli(url, "normal")
    declined = Terminal(url, "close")
    declined.wait_for(CLOSE_QUESTION)
    declined.type("n")
    assert declined.ended() == 1 and "nothing changed" in declined.seen
    assert cli(url, "show")["config"]["mode"] == "normal"

    agreed = Terminal(url, "close")
    agreed.wait_for(CLOSE_QUESTION)
    agreed.type("y")
    assert agreed.ended() == 0 and "admin-cli: closed" in agreed.seen
    cli(url, "normal")

    told = Terminal(url, "close", "--yes")  # a script at a terminal: no question
    assert told.ended() == 0 and "[y/N]" not in told.seen and "admin-cli: closed" in told.seen
    cli(url, "normal")

    harmless = Terminal(url, "capacity", "20", "--yes")  # nothing to ask; --yes still taken
    assert harmless.ended() == 0 and "[y/N]" not in harmless.seen

    zero = Terminal(url, "stock", "00")  # sold out however the 0 is written
    zero.wait_for("Mark the configured room sold out (the line is told)? [y/N] ")
    zero.type("n")
    assert zero.ended() == 1 and cli(url, "show")["config"]["stock"] is None


def test_a_capacity_past_what_the_origin_has_served_is_warned_of_and_asked_about(
    url: str, redis_server: RedisServer,
) -> None:
    """As the dashboard does: the origin served 3 at once without trouble, so 5 gets a
    warning (on stderr, for scripts too) and, at a terminal, a question."""
    import redis

    from waitingroom.engine import room_keys

    cli(url, "capacity", "3")
    with redis.Redis.from_url(redis_server.url) as store:
        store.hset(room_keys("admin-cli").adapt, "proven", 3)
    try:
        declined = Terminal(url, "capacity", "5")
        declined.wait_for("Set the capacity to 5 anyway? [y/N] ")
        declined.type("n")
        assert declined.ended() == 1 and cli(url, "show")["config"]["capacity"] == 3
        assert "served at most 3 sessions at once without trouble" in declined.seen
        scripted = admin(url, "capacity", "5")  # no terminal: done, and warned
        assert scripted.returncode == 0 and "warning: the origin has served at most 3" in (
            scripted.stderr)
        within = admin(url, "capacity", "3")  # as many as it has served: nothing to say
        assert within.returncode == 0 and "warning" not in within.stderr
        gone = admin(f"http://127.0.0.1:{free_port()}", "capacity", "5")  # nobody there
        assert gone.returncode == 1 and "cannot reach" in gone.stderr
        assert "warning" not in gone.stderr and "Traceback" not in gone.stderr
    finally:
        cli(url, "capacity", "20")
        with redis.Redis.from_url(redis_server.url) as store:
            store.hdel(room_keys("admin-cli").adapt, "proven")


def test_ctrl_c_at_the_question_exits_130_and_changes_nothing(url: str) -> None:
    cli(url, "normal")
    interrupted = Terminal(url, "close")
    interrupted.wait_for(CLOSE_QUESTION)
    interrupted.interrupt()
    assert interrupted.ended() == 130 and "Traceback" not in interrupted.seen
    assert cli(url, "show")["config"]["mode"] == "normal"


def test_version_and_every_option_has_help() -> None:
    version = subprocess.run([sys.executable, "-m", "waitingroom.cli", "--version"],
                             capture_output=True, text=True, timeout=30)
    assert re.fullmatch(r"waitingroom \d+\.\d+\.\d+\S*\n", version.stdout)
    from waitingroom.cli import _parser

    _, commands = _parser()
    admin = commands["admin"]
    assert "WAITINGROOM_ADMIN_URL" in admin.format_help()
    subcommands = next(a for a in admin._actions if a.dest == "admin_command").choices
    for name, parser in subcommands.items():
        for action in parser._actions:
            assert action.help, f"admin {name} {action.option_strings or action.dest}"


def test_summaries_say_what_is_unusual() -> None:
    config = {"capacity": 40, "capacity_mode": "adaptive", "capacity_min": 5,
              "capacity_max": 60, "mode": "normal", "paused": True, "capture": "on",
              "method": "fifo", "rate": 600, "max_waiting": 0, "stock": 0,
              "start_at_ms": 0, "message": "Back at nine", "messages": {"de": "Ab neun"}}
    snapshot = {"room": "default", "config": config, "breaker": "closed",
                "counts": {"active": 12, "waiting": 300}, "eta_last_seconds": None}
    assert room_line(snapshot) == (
        "default: normal, 12 of 40 in (adaptive 5-60), 300 waiting, breaker closed, PAUSED, "
        "capture on, rate 600/min, SOLD OUT, message 'Back at nine' (+de)")
    told = {**snapshot, "eta_last_seconds": 719}  # what the last in line's page says
    assert "300 waiting (last: ~12 min), breaker" in room_line(told)
    assert "(last: under a minute)" in room_line({**snapshot, "eta_last_seconds": 59})
    stale = {**snapshot, "config": {**config, "message_shown": False}}  # as visitors see it
    assert room_line(stale).endswith("message 'Back at nine' (+de) (hidden: posted before "
                                     "it sold out)")
    at = 1_764_579_600_000  # 2025-12-01 09:00Z
    assert utc(at) == "2025-12-01 09:00Z" and utc(at + 5000) == "2025-12-01 09:00:05Z"
    assert step_line({"id": "s1", "at_ms": at, "changes": {"capacity": 500, "stock": None},
                      "who": "alice"}) == "s1 at 2025-12-01 09:00Z: capacity=500 stock=off (alice)"
    assert audit_line({"at_ms": at, "who": "bob", "action": "update",
                       "before": {"capacity": 20}, "after": {"capacity": 30}}) == (
        "2025-12-01 09:00Z bob update: capacity 20 -> 30")
