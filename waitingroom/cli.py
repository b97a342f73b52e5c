"""The ``waitingroom`` command: ``serve`` (the reverse proxy) and ``demo``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
from collections.abc import Sequence

import uvicorn

from waitingroom.errors import WaitingRoomError
from waitingroom.settings import ENV_PREFIX, Settings, load_settings

# Secrets come from the environment or the config file, never argv (visible in ps).
_NOT_FLAGS = {"secret"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="waitingroom", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the waiting room as a reverse proxy in front of --origin",
        description="Every setting is also read from WAITINGROOM_<NAME> and --config; "
                    "secrets come from WAITINGROOM_SECRET (comma-separated, newest first).")
    serve.add_argument("--config", metavar="FILE", help="TOML file of settings")
    for f in dataclasses.fields(Settings):
        if f.name not in _NOT_FLAGS:
            serve.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar="VALUE",
                               help=f"(default: {f.default!r})")

    demo = commands.add_parser("demo", help="run a demo shop behind the waiting room, "
                               "with its own Redis")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--capacity", type=int, default=3,
                      help="concurrent checkout sessions the demo shop can serve")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``waitingroom`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            asyncio.run(_demo(args.port, args.capacity))
        else:
            flags = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
            _serve(load_settings(flags, config_file=args.config))
    except WaitingRoomError as exc:
        print(f"waitingroom: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _demo(port: int, capacity: int) -> None:
    from waitingroom.demo import run_demo

    await run_demo(port=port, capacity=capacity)


def _serve(settings: Settings) -> None:
    settings.require("origin", "secret")
    # Worker processes rebuild the same settings from the environment.
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        os.environ[ENV_PREFIX + f.name.upper()] = (
            ",".join(value) if isinstance(value, tuple) else str(value))
    uvicorn.run("waitingroom.app:proxy_app_from_environment", factory=True,
                host=settings.host, port=settings.port, workers=settings.workers,
                log_level="warning", proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=settings.forwarded_allow_ips or None,
                # The origin's own Date and Server headers pass through the proxy.
                server_header=False, date_header=False)


if __name__ == "__main__":
    sys.exit(main())
