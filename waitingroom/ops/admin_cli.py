"""``waitingroom admin ...``: the admin API from a terminal.

The token comes from ``WAITINGROOM_ADMIN_TOKEN`` (never a flag: argv is visible to
every user of the machine); the room's URL from ``--url`` or ``WAITINGROOM_ADMIN_URL``.
Each answer is printed as a line or a few (``--json``: the whole answer). A change that
turns shoppers away or lets everyone in is asked about first when a person is at the
terminal (``--yes`` skips the question); a time in the past is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import quote, urlencode

from waitingroom.engine.room_change import METHODS
from waitingroom.ops.admin_summary import summary, utc
from waitingroom.setting_types import epoch_ms

DEFAULT_URL = "http://127.0.0.1:8000"

# command -> (method, path, body builder from the parsed arguments)
_COMMANDS: dict[str, tuple[str, Any, Any]] = {
    "show": ("GET", "/room", None),
    "audit": ("GET", "/audit", None),
    "capacity": ("POST", "/room", lambda a: {"capacity": a.value}),
    "adaptive": ("POST", "/room", lambda a: {"capacity_mode": "adaptive",
                                             "capacity_min": a.min, "capacity_max": a.max}),
    "pause": ("POST", "/room", lambda a: {"paused": True}),
    "resume": ("POST", "/room", lambda a: {"paused": False}),
    "open": ("POST", "/room", lambda a: {"mode": "open"}),
    "normal": ("POST", "/room", lambda a: {"mode": "normal"}),
    "close": ("POST", "/room", lambda a: {"mode": "closed"}),
    "rate": ("POST", "/room", lambda a: {"rate": a.value}),
    "message": ("POST", "/room", lambda a: _message(a)),
    "capture": ("POST", "/room", lambda a: {"capture": a.setting}),
    "max-waiting": ("POST", "/room", lambda a: {"max_waiting": a.value}),
    "method": ("POST", "/room", lambda a: {"method": a.method}),
    "stock": ("POST", "/room", lambda a: _stock(a)),
    "schedule": ("POST", "/room", lambda a: {"start_at_ms": _start_at_ms(a)}),
    "invite": ("POST", "/invites", lambda a: {"uses": a.uses, "expires_in_seconds": a.expires,
                                              "to": a.to}),
    "plan": ("POST", "/timeline", lambda a: _plan(a)),
    "timeline": ("GET", "/timeline", None),
    "cancel": ("DELETE", lambda a: "/timeline/" + quote(a.id, safe=""), None),
    "rooms": ("GET", "/rooms", None),
    "create-room": ("POST", "/rooms", lambda a: {"name": a.name, "paths": a.paths,
                                                 "capacity": a.capacity, "rate": a.rate}),
    "revoke-room": ("DELETE", lambda a: "/rooms/" + quote(a.name, safe=""), None),
}
_ROOMLESS = {"rooms", "create-room", "revoke-room"}


def add_parser(commands: Any) -> None:
    """Add ``admin`` and its subcommands to the ``waitingroom`` command's parser."""
    admin = commands.add_parser("admin", help="tune a running room (admin API)")
    admin.add_argument("--url", default=os.environ.get("WAITINGROOM_ADMIN_URL", DEFAULT_URL),
                       help="the waiting room's base URL (default: WAITINGROOM_ADMIN_URL, "
                       f"else {DEFAULT_URL}); the token is read from WAITINGROOM_ADMIN_TOKEN")
    admin.add_argument("--room", help="the room to act on (default: the configured room)")
    sub = admin.add_subparsers(dest="admin_command", required=True)
    _live_commands(sub)
    _planned_commands(sub)
    _room_commands(sub)
    for command in sub.choices.values():
        command.add_argument("--json", action="store_true",
                             help="print the whole answer as JSON, not a summary")
        command.add_argument("--yes", "-y", action="store_true",
                             help="do not ask first, where a change would (for scripts at a "
                                  "terminal)")


def _live_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Reading the room and changing its live settings now."""
    sub.add_parser("show", help="config, numbers and breaker state")
    sub.add_parser("audit", help="recent changes: who, when, before and after")
    sub.add_parser("capacity", help="set the concurrent sessions allowed (pinned: an "
                   "adaptive room stops learning)").add_argument(
        "value", type=_at_least_one, help="sessions, 1 or more")
    adaptive = sub.add_parser("adaptive", help="learn the capacity from the origin's "
                              "answers, between --min and --max")
    adaptive.add_argument("--min", type=_at_least_one, required=True,
                          help="the lowest capacity it may set")
    adaptive.add_argument("--max", type=_at_least_one, required=True,
                          help="the highest capacity it may set (at least --min)")
    sub.add_parser("pause", help="admit nobody new; the queue keeps forming")
    sub.add_parser("resume", help="admit again")
    sub.add_parser("open", help="let everyone through (no queue)")
    sub.add_parser("normal", help="gate the order flow again")
    sub.add_parser("close", help="take no new places; the line drains in order")
    sub.add_parser("rate", help="admissions per minute on top of the cap (0: no "
                   "limit)").add_argument("value", type=whole_number, help="per minute, 0 or more")
    message = sub.add_parser("message", help="set (or --clear) the operator message")
    message.add_argument("text", nargs="*", help="the message, e.g. Back in stock at 9")
    message.add_argument("--clear", action="store_true",
                         help="no message, in any language (with --lang: that one only)")
    message.add_argument("--lang", help="the message for visitors reading this language "
                         "(e.g. de); others keep the main one")
    sub.add_parser("capture", help="force data-capture mode on/off, or follow the "
                   "breaker (auto)").add_argument("setting", choices=("on", "off", "auto"),
                                        help="on, off or auto")
    sub.add_parser("method", help="how the line works: fifo (first come, first served), "
                   "random (a fair draw at each free place), passthrough (count sessions, "
                   "let everyone in) or reject (no line: who cannot walk in is turned "
                   "away)").add_argument("method", choices=METHODS, help="the way the line works")
    sub.add_parser("max-waiting", help="the longest the line may grow; past it arrivals "
                   "get a 'line is full' page and no place (0: no limit)").add_argument(
        "value", type=whole_number, help="places, 0 or more")
    stock = sub.add_parser("stock", help="the units left to sell (0: sold out; off: stop "
                           "counting); the origin may report it too")
    stock.add_argument("units", type=_units, help="a whole number, or off")
    stock.add_argument("--per-session", type=float, help="units a session buys, assumed "
                       "until 20 sessions have ended (default 1)")


def _planned_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """A start time, invitations and changes planned for later."""
    schedule = sub.add_parser("schedule", help="a start time with a pre-queue: arrivals "
                              "before it are placed in random order at the start")
    when = schedule.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", help="ISO 8601 time with a zone, e.g. 2026-11-23T09:00:00Z")
    when.add_argument("--in", dest="in_seconds", type=whole_number, help="seconds from now")
    when.add_argument("--now", action="store_true", help="start at once")
    when.add_argument("--clear", action="store_true", help="remove the schedule")
    invite = sub.add_parser("invite", help="a signed link to the priority lane (staff, VIPs)")
    invite.add_argument("--uses", type=_at_least_one, default=1,
                        help="how many people may use it")
    invite.add_argument("--expires", type=_at_least_one, default=86_400,
                        help="seconds it stays valid")
    invite.add_argument("--to", default="/", help="the path it leads to, e.g. /checkout")
    plan = sub.add_parser("plan", help="change live settings at a set time, once (e.g. "
                          "plan --at 2026-12-01T09:00:00Z mode=normal capacity=500)")
    moment = plan.add_mutually_exclusive_group(required=True)
    moment.add_argument("--at", help="ISO 8601 time with a zone")
    moment.add_argument("--in", dest="in_seconds", type=whole_number, help="seconds from now")
    moment.add_argument("--now", action="store_true", help="apply at once (as a step)")
    plan.add_argument("changes", nargs="+", type=_setting, metavar="name=value",
                      help="live settings as for the room: capacity=500 rate=2000 "
                      "mode=closed message='Back at nine' stock=off")
    sub.add_parser("timeline", help="the changes planned, soonest first")
    sub.add_parser("cancel", help="drop a planned change").add_argument(
        "id", help="the step's id, as timeline shows it")


def _room_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Rooms created and removed at run time."""
    sub.add_parser("rooms", help="every room with its paths and numbers")
    create = sub.add_parser("create-room", help="a room of its own for some paths, with "
                            "its own capacity and rate")
    create.add_argument("name", help="lowercase letters, digits and dashes")
    create.add_argument("--paths", nargs="+", required=True,
                        help="glob patterns it gates, e.g. '/consoles/*'")
    create.add_argument("--capacity", type=_at_least_one, required=True,
                        help="its concurrent sessions")
    create.add_argument("--rate", type=whole_number, default=0, help="admissions per minute (0: no "
                        "limit)")
    sub.add_parser("revoke-room", help="remove a created room; its paths fall back to the "
                   "configured room").add_argument("name", help="the room's name")


def _setting(text: str) -> tuple[str, object]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: name=value, e.g. capacity=500")
    if value == "off" and name == "stock":
        return name, None
    try:  # numbers, true/false; anything else is text
        return name, json.loads(value)
    except ValueError:
        return name, value


def whole_number(text: str) -> int:
    """An argument that is a whole number, 0 or more (argparse's ``type``)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number, 0 or more")
    return int(text)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number, 1 or more")
    return int(text)


def _plan(args: argparse.Namespace) -> dict[str, object]:
    when: dict[str, object] = ({"at_ms": _at_ms(args.at)} if args.at else
                               {"in_seconds": 0 if args.now else args.in_seconds})
    return {**when, "changes": dict(args.changes)}


def _units(value: str) -> str:
    if value != "off" and not value.isdigit():
        raise argparse.ArgumentTypeError("a whole number of units, or off")
    return value


def _stock(args: argparse.Namespace) -> dict[str, object]:
    body: dict[str, object] = {"stock": None if args.units == "off" else int(args.units)}
    if args.per_session is not None:
        body["sales_per_session"] = args.per_session
    return body


def _message(args: argparse.Namespace) -> dict[str, object]:
    text = "" if args.clear else " ".join(args.text)
    if not text and not args.clear:
        _refuse("message: give the text, or --clear")
    return {"messages": {args.lang: text}} if args.lang else {"message": text}


def _start_at_ms(args: argparse.Namespace) -> int:
    if args.clear:
        return 0
    if args.in_seconds is not None or args.now:
        return int((time.time() + (args.in_seconds or 0)) * 1000)
    return _at_ms(args.at)


def _at_ms(text: str) -> int:
    """``--at``: a time to come (one in the past would apply at once, unasked)."""
    try:
        at_ms = epoch_ms(text)
    except ValueError as exc:
        _refuse(f"--at {exc}")
    if at_ms < time.time() * 1000:
        _refuse(f"--at {utc(at_ms)} is in the past: --now to apply it at once")
    return at_ms


def _refuse(problem: str) -> NoReturn:
    """A command line that cannot be sent, said in one line: exit 2, as argparse's own."""
    print(f"waitingroom: {problem}", file=sys.stderr)
    raise SystemExit(2)


def _room(args: argparse.Namespace) -> str:
    return f"room {args.room}" if args.room else "the configured room"


# command -> what it would do that a person should confirm (None: nothing to ask)
_QUESTIONS: dict[str, Callable[[argparse.Namespace], str | None]] = {
    "open": lambda a: f"Let everyone into {_room(a)} at once, with no line",
    "close": lambda a: f"Take no new places in {_room(a)} (the line drains)",
    "pause": lambda a: f"Admit nobody new to {_room(a)} until resume",
    "capture": lambda a: {
        "on": f"Send every shopper in {_room(a)} to the capture form, orders up or not",
        "off": f"Never fall back to capture in {_room(a)}, even when orders fail",
    }.get(a.setting),
    "stock": lambda a: (f"Mark {_room(a)} sold out (the line is told)"
                        if a.units != "off" and int(a.units) == 0 else None),
    "method": lambda a: {
        "reject": f"Turn away everyone who cannot walk straight into {_room(a)}",
        "passthrough": f"Let everyone into {_room(a)}, counting sessions only",
    }.get(a.method),
    "revoke-room": lambda a: f"Remove room {a.name}; its paths fall back to the "
                             "configured room",
}


def _confirmed(args: argparse.Namespace, question: str | None = None) -> bool:
    """Whether to go ahead: asked of the person at the terminal when the change is one
    of :data:`_QUESTIONS` or ``question`` is given (no terminal, or ``--yes``: go
    ahead)."""
    ask = _QUESTIONS.get(args.admin_command)
    question = question or (ask(args) if ask else None)
    if question is None or args.yes or not sys.stdin.isatty():
        return True
    print(f"{question}? [y/N] ", end="", file=sys.stderr, flush=True)  # stdout may be a file
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


def run(args: argparse.Namespace) -> int:
    """Call the admin API (after asking, where :func:`_confirmed` says so) and print
    its answer; 0 on success, 1 on a refusal or an unreachable room, 2 without a token."""
    token = os.environ.get("WAITINGROOM_ADMIN_TOKEN", "").rpartition(":")[2]
    if not token:
        print("waitingroom: WAITINGROOM_ADMIN_TOKEN: is required", file=sys.stderr)
        return 2
    untested = _untested(args, token)
    if untested:  # said to scripts too, on stderr
        print(f"waitingroom: warning: {untested}", file=sys.stderr)
    if not _confirmed(args, untested and f"Set the capacity to {args.value} anyway"):
        print("waitingroom: nothing changed", file=sys.stderr)
        return 1
    method, path, build = _COMMANDS[args.admin_command]
    if callable(path):
        path = path(args)
    try:
        answer = _call(args, token, method, path, build(args) if build else None)
        print(json.dumps(answer, indent=2) if args.json
              else summary(args.admin_command, answer))
        return 0
    except urllib.error.HTTPError as exc:
        print(f"waitingroom: {args.url} answered {exc.code}: {_problem(exc.read())}",
              file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"waitingroom: cannot reach {args.url}: {exc}", file=sys.stderr)
    return 1


def _call(args: argparse.Namespace, token: str, method: str, path: str,
          body: object) -> Any:
    """One call of the admin API: its JSON answer (urllib's errors raised)."""
    if args.room and args.admin_command not in _ROOMLESS:
        path += "?" + urlencode({"room": args.room})
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (the operator's own URL)
        args.url.rstrip("/") + "/_wr/admin" + path, data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.load(response)


def _untested(args: argparse.Namespace, token: str) -> str | None:
    """For ``capacity``: why a cap past the most sessions the origin has served well
    may hurt (None if it is not past it, or that is not known)."""
    if args.admin_command != "capacity":
        return None
    try:
        proven = int(_call(args, token, "GET", "/room", None)["origin"]["proven_sessions"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return None  # the change itself will say what is wrong
    if not proven or args.value <= proven:
        return None
    return (f"the origin has served at most {proven} sessions at once without trouble; "
            "past that it may slow down or fail (the breaker then sends shoppers to the "
            "details form): `adaptive` finds its limit")


def _problem(body: bytes) -> str:
    """What an admin API error answer says is wrong (its ``error`` field if JSON)."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error) if error else body.decode(errors="replace")[:500]
