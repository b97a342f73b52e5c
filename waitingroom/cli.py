"""The ``waitingroom`` command: ``serve`` (the reverse proxy), ``demo``, ``replay``
(captured orders into the recovered backend) and ``captures export``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import urlsplit

import uvicorn

from waitingroom.config import environment_value, load_settings
from waitingroom.errors import ConfigError, WaitingRoomError
from waitingroom.ops import admin_cli
from waitingroom.proxy.websocket import MAX_MESSAGE_BYTES
from waitingroom.settings import ENV_PREFIX, SECRET_SETTINGS, Settings
from waitingroom.web.server import LimitedHttpToolsProtocol, port_in_use

GRACEFUL_SHUTDOWN_SECONDS = 10
"""On SIGTERM, ``serve`` stops taking connections, lets requests in flight finish and
ends the rest (event streams) after this; the room's own shutdown then takes at most
``middleware.SHUTDOWN_SECONDS`` (20 s). An orchestrator's grace period must cover
both, and any pre-stop pause (deploy/k8s: 5 + 10 + 20 < 45 s)."""

def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command's parser, and each subcommand's by name."""
    parser = argparse.ArgumentParser(prog="waitingroom", description=__doc__.replace("``", ""))
    commands = parser.add_subparsers(dest="command", required=True)

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

    admin_cli.add_parser(commands)

    simulate = commands.add_parser(
        "simulate", help="capacity planner: run the admission engine in simulated time",
        description="Plays a launch in simulated time, by the room's admission rules "
                    "(or, with --exact, its own scripts on a private Redis), and prints "
                    "the line, the waits, who gave up and the time to drain.")
    simulate.add_argument("--arrivals", required=True, metavar="CURVE",
                          help="MINUTE:ARRIVALS_PER_MINUTE points joined by straight lines, "
                               "e.g. 0:0,1:20000,5:2000,30:0")
    simulate.add_argument("--capacity", type=int, required=True,
                          help="concurrent sessions the order flow can serve")
    simulate.add_argument("--session-minutes", type=float, required=True,
                          help="how long an admitted shopper holds a session")
    simulate.add_argument("--abandon-rate", type=float, default=0.0,
                          help="share of those waiting who give up each minute (0-1)")
    simulate.add_argument("--rate", type=int, default=0,
                          help="admission rate limit per minute (0: none)")
    simulate.add_argument("--grace-seconds", type=int, default=60)
    simulate.add_argument("--tick-seconds", type=float, default=1.0,
                          help="simulated time step")
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--stock", type=int, help="units on sale: when they sell out, "
                          "how many were let in, told early, turned away")
    simulate.add_argument("--step", action="append", default=[], metavar="MINUTE:CHANGES",
                          help="a planned change, e.g. 30:capacity=800,rate=2000 or "
                               "45:stock=2000 (a restock); repeat for more")
    simulate.add_argument("--sales-per-session", type=float, default=1.0,
                          help="units an admitted shopper buys, on average")
    simulate.add_argument("--origin-knee", type=int, metavar="N",
                          help="the order system serves N sessions at full speed and slows "
                               "(and loses work to contention) past them")
    simulate.add_argument("--origin-answer-ms", type=float, default=200.0,
                          help="an answer's time at full speed (with --origin-knee)")
    simulate.add_argument("--adaptive", metavar="MIN:MAX",
                          help="adaptive capacity between MIN and MAX, learning the knee "
                               "from the answers (needs --origin-knee; quick model only)")
    simulate.add_argument("--exact", action="store_true",
                          help="run the room's own Lua scripts on a private Redis (minutes "
                               "for a long launch) instead of the quick model of the same "
                               "rules (seconds; checked against the scripts by the tests)")
    simulate.add_argument("--plot", metavar="FILE.png",
                          help="also draw the results (needs matplotlib: "
                               "pip install 'waitingroom[load]')")

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
    return parser, dict(commands.choices)


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
            asyncio.run(_demo(args.port, args.capacity))
        elif args.command == "demo-shop":
            from waitingroom.tools.demo import DemoShop

            shop = DemoShop(capacity=args.capacity,
                            session_idle_seconds=args.session_idle_seconds)
            uvicorn.run(shop.app, host=args.host, port=args.port, log_level="warning")
        elif args.command == "simulate":
            return _simulate(args)
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
    except KeyboardInterrupt:
        pass
    return 0


async def _redis_answers(settings: Settings) -> bool:
    from waitingroom.engine import Engine

    engine = Engine.from_settings(settings)
    try:
        return await engine.check_server()
    finally:
        await engine.aclose()


async def _demo(port: int, capacity: int) -> None:
    from waitingroom.tools.demo import run_demo

    await run_demo(port=port, capacity=capacity)


def _simulate(args: argparse.Namespace) -> int:
    from waitingroom.tools import model, simulate
    from waitingroom.tools.plan import ArrivalCurve, OriginModel, Plan, PlannedStep

    try:
        if args.exact and (args.adaptive or args.origin_knee):
            raise ValueError("--origin-knee and --adaptive are modelled by the quick model "
                             "only, not --exact")
        plan = Plan(
            ArrivalCurve.parse(args.arrivals), capacity=args.capacity,
            session_seconds=args.session_minutes * 60, abandon_per_minute=args.abandon_rate,
            rate_per_minute=args.rate, grace_seconds=args.grace_seconds,
            tick_seconds=args.tick_seconds, seed=args.seed, stock=args.stock,
            sales_per_session=args.sales_per_session,
            steps=tuple(PlannedStep.parse(step) for step in args.step),
            origin=None if args.origin_knee is None else OriginModel(
                args.origin_knee, args.origin_answer_ms),
            adaptive=None if args.adaptive is None else _bounds(args.adaptive))
    except ValueError as exc:
        print(f"waitingroom: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    if args.exact:
        outcome = asyncio.run(simulate.plan_launch(plan, _Progress(plan, started)))
    else:
        outcome = model.model_launch(plan)
    how = "the room's own scripts" if args.exact else "the quick model (--exact: the scripts)"
    print(simulate.summary(plan, outcome))
    print(f"planned in {time.monotonic() - started:.1f} s by {how}")
    if args.plot:
        simulate.plot(plan, outcome, args.plot)
        print(f"plot written to {args.plot}")
    return 0 if outcome.drain_seconds is not None or outcome.sold_out_seconds else 1


class _Progress:
    """Says how an exact simulation is going, every few seconds, on standard error."""

    def __init__(self, plan: Any, started: float) -> None:
        self._arrivals_end = plan.arrivals.end_seconds
        self._started = self._last = started

    def __call__(self, sample: Any) -> None:
        now = time.monotonic()
        if now - self._last < 5:
            return
        self._last = now
        speed = sample.t / max(now - self._started, 1e-9)
        left = (f"; arrivals end in {(self._arrivals_end - sample.t) / speed:.0f} s"
                if sample.t < self._arrivals_end else "; draining")
        print(f"  simulated {sample.t / 60:.0f} min ({speed:.0f}x real time): "
              f"{sample.waiting} waiting, {sample.admitted} let in{left}",
              file=sys.stderr, flush=True)


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
    names = [f.name for f in parse_fields(settings.capture_fields)]
    try:
        count = await export_captures(engine, settings.room, out, fmt=fmt, field_names=names,
                                      interest=interest)
    finally:
        await engine.aclose()
    print(f"exported {count} {'interest records' if interest else 'captures'}",
          file=sys.stderr)
    return 0


def _serve(settings: Settings) -> None:
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


def _bounds(text: str) -> tuple[int, int]:
    low, colon, high = text.partition(":")
    if not (colon and low.isdigit() and high.isdigit()):
        raise ValueError(f"--adaptive must be MIN:MAX, like 10:400, not {text!r}")
    return int(low), int(high)


if __name__ == "__main__":
    sys.exit(main())
