"""Exceptions raised by waitingroom.

The tree::

    WaitingRoomError
    ├── ConfigError (also a ValueError)   a setting is missing or out of range
    └── RedisServerError                  an embedded redis-server would not start

Visitors never see these: bad cookies, forms and headers get an answer, not an
exception. They stop start-up or a command-line run with a message to the operator.
"""

from __future__ import annotations


class WaitingRoomError(Exception):
    """Base class of every exception waitingroom raises on purpose."""


class ConfigError(WaitingRoomError, ValueError):
    """A setting is invalid; ``key`` names it the way the operator wrote it."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class RedisServerError(WaitingRoomError):
    """A local redis-server (for the demo or the tests) could not be started."""
