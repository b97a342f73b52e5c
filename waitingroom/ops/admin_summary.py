"""What ``waitingroom admin`` prints by default: each admin API answer in a line a
person reads at a glance (``--json`` prints the answer whole). Times are UTC, as on
the status page."""

from __future__ import annotations

import time
from typing import Any


def utc(ms: int) -> str:
    """An epoch-milliseconds time as the status page writes it: ``2026-12-01 09:00Z``
    (seconds shown when there are any)."""
    seconds = ms / 1000
    shown = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return shown.removesuffix(":00") + "Z"


def _shown(value: Any) -> str:
    return "off" if value is None else str(value)  # null: a stock no longer counted


def _changes(changes: dict[str, Any]) -> str:
    return " ".join(f"{name}={_shown(value)}" for name, value in changes.items())


def room_line(snapshot: dict[str, Any]) -> str:
    """A room in one line: how it admits, who is in and waiting, what is unusual."""
    config, counts = snapshot["config"], snapshot["counts"]
    adaptive = (f"adaptive {config['capacity_min']}-{config['capacity_max']}"
                if config["capacity_mode"] == "adaptive" else "fixed")
    parts = [f"{snapshot['room']}: {config['mode']}",
             f"{counts['active']} of {config['capacity']} in ({adaptive})",
             f"{counts['waiting']} waiting{_last_told(snapshot['eta_last_seconds'])}",
             f"breaker {snapshot['breaker']}"]
    parts += _unusual(config)
    return ", ".join(parts)


def _last_told(eta_seconds: int | None) -> str:
    return "" if eta_seconds is None else f" (last: {wait_words(eta_seconds)})"


def wait_words(eta_seconds: int) -> str:
    """A wait as ops read it, in the CLI and on the dashboard alike."""
    return "under a minute" if eta_seconds < 60 else f"~{round(eta_seconds / 60)} min"


def _unusual(config: dict[str, Any]) -> list[str]:
    """What is set away from its default, as ops would say it."""
    said = []
    if config["paused"]:
        said.append("PAUSED")
    if config["capture"] != "auto":
        said.append(f"capture {config['capture']}")
    if config["method"] != "fifo":
        said.append(f"method {config['method']}")
    if config["rate"]:
        said.append(f"rate {config['rate']}/min")
    if config["max_waiting"]:
        said.append(f"line at most {config['max_waiting']}")
    if config["stock"] is not None:
        said.append("SOLD OUT" if config["stock"] == 0 else f"stock {config['stock']}")
    if config["start_at_ms"] and config["start_at_ms"] > time.time() * 1000:
        said.append(f"starts {utc(config['start_at_ms'])}")
    if config["message"] or config["messages"]:
        languages = sorted(config["messages"])
        said.append(f"message {config['message']!r}"
                    + (f" (+{', '.join(languages)})" if languages else "")
                    + ("" if config.get("message_shown", True)
                       else " (hidden: posted before it sold out)"))
    return said


def step_line(step: dict[str, Any]) -> str:
    """A planned change: when, what, by whom."""
    return f"{step['id']} at {utc(step['at_ms'])}: {_changes(step['changes'])} ({step['who']})"


def audit_line(entry: dict[str, Any]) -> str:
    """A change made: when, by whom, what it was and became."""
    fields = sorted(set(entry["before"]) | set(entry["after"]))
    moved = ", ".join(f"{name} {_shown(entry['before'].get(name, '-'))} -> "
                      f"{_shown(entry['after'].get(name, '-'))}" for name in fields)
    return f"{utc(entry['at_ms'])} {entry['who']} {entry['action']}" + (
        f": {moved}" if moved else "")


def summary(command: str, answer: dict[str, Any]) -> str:
    """The answer to ``command`` as lines to print."""
    if "config" in answer and "counts" in answer:
        return room_line(answer)
    if command == "audit":
        return "\n".join(audit_line(e) for e in answer["entries"]) or "no changes yet"
    if command == "timeline":
        return "\n".join(step_line(s) for s in answer["steps"]) or "nothing planned"
    if command == "plan":
        return "planned " + step_line(answer)
    if command == "cancel":
        return "cancelled " + step_line(answer["cancelled"])
    if command == "rooms":
        return "\n".join(room_line(room) for room in answer["rooms"])
    if command == "invite":
        return (f"{answer['url']}  ({answer['uses']} use(s), for "
                f"{answer['expires_in_seconds']} s, to {answer['to']})")
    if command == "revoke-room":
        return f"revoked {answer['revoked']}: its paths fall back to the configured room"
    return ", ".join(f"{key} {value}" for key, value in answer.items())
