"""The ``waitingroom`` command: ``serve`` (the reverse proxy), ``demo``, ``replay``
(captured orders into the recovered backend) and ``captures export``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from typing import TextIO
from urllib.parse import urlsplit

from waitingroom.config import environment_value, load_settings
from waitingroom.errors import ConfigError, WaitingRoomError
from waitingroom.ops import admin_cli
from waitingroom.settings import ENV_PREFIX, SECRET_SETTINGS, Settings
from waitingroom.tools import simulate_cli

GRACEFUL_SHUTDOWN_SECONDS = 10
"""On SIGTERM, ``serve`` stops taking connections, lets requests in flight finish and
ends the rest (event streams) after this; the room's own shutdown then takes at most
``middleware.SHUTDOWN_SECONDS`` (20 s). An orchestrator's grace period must cover
both, and any pre-stop pause (deploy/k8s: 5 + 10 + 20 < 45 s)."""

def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's by name."""
    parser = argparse.ArgumentParser(prog="waitingroom", description=__doc__.replace("``", ""))
    parser.add_argument("--version", action="version",
                        version=f"waitingroom {importlib.metadata.version('waitingroom')}")
    commands = parser.add_subparsers(dest="command", required=True)

    _serve_flags(commands)
    _replay_flags(commands)
    _captures_flags(commands)
    admin_cli.add_parser(commands)
    simulate_cli.add_parser(commands)
    _demo_flags(commands)
    return parser, dict(commands.choices)


def _serve_flags(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``serve``: every setting but the secrets, as a flag with its description."""
    serve = commands.add_parser(
        "serve", help="run the waiting room as a reverse proxy in front of --origin",
        description="Every setting is also read from WAITINGROOM_<NAME> and --config. "
                    "Secrets (secret, admin_token, smtp_url, notify_webhook_secret) are "
                    "read only from there, never from a flag: WAITINGROOM_SECRET holds the "
                    "signing secrets, comma-separated, newest first.")
    serve.add_argument("--config", metavar="FILE", help="TOML file of settings")
    docs = Settings.help_texts()
    for name, field in Settings.model_fields.items():
        if name not in SECRET_SETTINGS:
            default = ",".join(field.default) if isinstance(field.default, tuple) else field.default
            shown = "none" if default == "" else str(default).lower() if isinstance(
                default, bool) else default
            serve.add_argument("--" + name.replace("_", "-"), dest=name,
                               metavar=Settings.kind_of(name),
                               help=f"{docs[name]} (default: {shown})".replace("%", "%%"))


def _replay_flags(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``replay``: where to, how often, as whom."""
    replay = commands.add_parser(
        "replay", help="post captured orders to the backend in arrival order, exactly once "
        "in effect (Idempotency-Key); resumes where a killed run stopped")
    _room_flags(replay)
    replay.add_argument("--to", required=True, metavar="URL",
                        help="the backend's order/activation endpoint (POST, JSON)")
    replay.add_argument("--follow", action="store_true",
                        help="keep running and deliver new captures as they arrive")
    replay.add_argument("--max-tries", type=int, default=5,
                        help="tries before a record is parked in the dead-letter stream")
    replay.add_argument("--backoff-seconds", type=float, default=1.0,
                        help="first retry delay; doubles each try (max 60)")
    replay.add_argument("--consumer", default="replayer",
                        help="this worker's name in the replay group")


def _captures_flags(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``captures export``."""
    captures = commands.add_parser("captures", help="work with captured orders")
    captures_commands = captures.add_subparsers(dest="captures_command", required=True)
    export = captures_commands.add_parser("export", help="write every capture as CSV or "
                                          "JSON Lines")
    _room_flags(export)
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", metavar="FILE", help="default: standard output")
    export.add_argument("--interest", action="store_true",
                        help="the details left to hear if more stock comes in (sold out, "
                             "or unlikely to be served), not the orders")


def _demo_flags(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``demo-shop`` and ``demo``."""
    shop = commands.add_parser("demo-shop", help="only the demo shop (an origin for "
                               "deploy/compose.yaml and load tests)")
    shop.add_argument("--host", default="127.0.0.1")
    shop.add_argument("--port", type=int, default=8001)
    shop.add_argument("--capacity", type=int, default=3,
                      help="concurrent checkout sessions it can serve")
    shop.add_argument("--session-idle-seconds", type=int, default=119,
                      help="forget a checkout session idle this long (keep it under the "
                           "room's session_idle_seconds)")

    demo = commands.add_parser("demo", help="run a demo shop behind the waiting room, "
                               "with its own Redis")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--capacity", type=int, default=3,
                      help="concurrent checkout sessions the demo shop can serve")
    demo.add_argument("--crowd", type=admin_cli.whole_number, default=0, metavar="N",
                      help="N make-believe shoppers coming and going, so the line forms "
                           "and moves by itself (default: none)")


def _room_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML file of settings")
    parser.add_argument("--room", help="room name (default: from settings)")
    parser.add_argument("--redis-url", dest="redis_url", metavar="URL")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``waitingroom`` console script."""
    parser, commands = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the subcommand, with its own usage
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command == "admin":
            return admin_cli.run(args)
        if args.command == "demo":
            asyncio.run(_demo(args.port, args.capacity, args.crowd))
        elif args.command == "demo-shop":
            import uvicorn

            from waitingroom.tools.demo import DemoShop

            shop = DemoShop(capacity=args.capacity,
                            session_idle_seconds=args.session_idle_seconds)
            uvicorn.run(shop.app, host=args.host, port=args.port, log_level="warning")
        elif args.command == "simulate":
            return simulate_cli.run(args)
        elif args.command in ("replay", "captures"):
            settings = load_settings({"room": args.room, "redis_url": args.redis_url},
                                     config_file=args.config)
            if args.command == "replay":
                return asyncio.run(_replay(settings, args))
            with (open(args.output, "w", encoding="utf-8", newline="") if args.output
                  else contextlib.nullcontext(sys.stdout)) as out:
                return asyncio.run(_export(settings, args.format, out, args.interest))
        else:
            flags = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
            _serve(load_settings(flags, config_file=args.config))
    except WaitingRoomError as exc:
        print(f"waitingroom: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what the shell expects of an interrupted command
        print(file=sys.stderr)
        return 130
    return 0


async def _redis_answers(settings: Settings) -> bool:
    from waitingroom.engine import Engine

    engine = Engine.from_settings(settings)
    try:
        return await engine.check_server()
    finally:
        await engine.aclose()


async def _demo(port: int, capacity: int, crowd: int) -> None:
    from waitingroom.tools.demo import run_demo

    await run_demo(port=port, capacity=capacity, crowd=crowd)


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from waitingroom.capture.replay import Replayer
    from waitingroom.engine import Engine

    engine = Engine.from_settings(settings)
    try:
        replayer = Replayer(engine, settings.room, args.to, consumer=args.consumer,
                            max_tries=args.max_tries, backoff_seconds=args.backoff_seconds,
                            out=sys.stderr)
        progress = await replayer.run(follow=args.follow)
    finally:
        await engine.aclose()
    return 1 if progress.dead_lettered else 0


async def _export(settings: Settings, fmt: str, out: TextIO, interest: bool) -> int:
    from waitingroom.capture.export import export_captures
    from waitingroom.engine import Engine
    from waitingroom.fields import parse_fields

    engine = Engine.from_settings(settings)
    form = settings.interest_fields if interest else settings.capture_fields
    names = [f.name for f in parse_fields(form)]
    try:
        count = await export_captures(engine, settings.room, out, fmt=fmt, field_names=names,
                                      interest=interest)
    finally:
        await engine.aclose()
    print(f"exported {count} {'interest records' if interest else 'captures'}",
          file=sys.stderr)
    return 0


def _serve(settings: Settings) -> None:
    import uvicorn  # here: the admin commands start in a fraction of the time

    from waitingroom.proxy.websocket import MAX_MESSAGE_BYTES
    from waitingroom.web.server import LimitedHttpToolsProtocol, port_in_use

    settings.require("origin", "secret")
    if port_in_use(settings.host, settings.port):
        raise ConfigError("port", f"{settings.host}:{settings.port} is already in use: stop "
                          "what listens there or pick another (--port, WAITINGROOM_PORT)")
    print(_start_line(settings, asyncio.run(_redis_answers(settings))), file=sys.stderr,
          flush=True)
    # Worker processes rebuild the same settings from the environment.
    for name in Settings.model_fields:
        os.environ[ENV_PREFIX + name.upper()] = environment_value(getattr(settings, name))
    uvicorn.run("waitingroom.app:proxy_app_from_environment", factory=True,
                log_config=None,  # ours: JSON lines, set up in each worker by the factory
                host=settings.host, port=settings.port, workers=settings.workers,
                log_level="warning", access_log=False,  # formatted per request even if unused
                proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=settings.forwarded_allow_ips or None,
                # The origin's own Date and Server headers pass through the proxy.
                server_header=False, date_header=False,
                http=LimitedHttpToolsProtocol,  # limits on request heads (server.py)
                # On SIGTERM: open event streams are ended after this (their pages
                # reconnect to another process), then the room stops its background work.
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                ws_max_size=MAX_MESSAGE_BYTES)  # a visitor's WebSocket messages, as the origin's


def _start_line(settings: Settings, redis_answers: bool) -> str:
    """What ``serve`` says as it starts: where, for which room, and whether Redis answers."""
    parts = urlsplit(settings.redis_url)
    redis_url = (parts._replace(netloc=f"***@{parts.hostname}:{parts.port or ''}".rstrip(":"))
                 .geturl() if parts.password else settings.redis_url)
    redis = ("reachable" if redis_answers else
             "NOT reachable: visitors get a retry page until it is")
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    return (f"waitingroom serve: listening on http://{settings.host}:{settings.port}{workers} "
            f"in front of {settings.origin}; room {settings.room}, capacity "
            f"{settings.capacity} (the live value in Redis wins); Redis {redis_url} {redis}")


if __name__ == "__main__":
    sys.exit(main())
