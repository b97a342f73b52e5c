"""``waitingroom demo``: a launch-day shop, a private Redis and the waiting room in front.

The shop is the 2008 launch site in miniature: the catalogue and login are always
open, but the checkout can serve only a few concurrent sessions and fails loudly
past that. The waiting room keeps it under that limit. A button on the front page
breaks the order system, to show data-capture mode; ``/api/orders`` takes the
replayed orders. The admin API is on (its token printed at start), and notify-me
emails go to a local mail sink whose messages the shop shows at ``/notices``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import signal
import time
from email import message_from_bytes, policy
from html import escape
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from waitingroom.app import build_proxy_app
from waitingroom.errors import ConfigError
from waitingroom.settings import Settings
from waitingroom.tools.demo_crowd import Crowd
from waitingroom.tools.redis_server import RedisServer, free_port
from waitingroom.web.server import port_in_use

SHOP_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>
<style>body{{font:1.05rem/1.5 system-ui,sans-serif;max-width:32rem;margin:auto;padding:1rem}}
a.button,button{{display:inline-block;background:#0b5cad;color:#fff;padding:.6rem 1rem;
border:0;border-radius:.4rem;text-decoration:none;font-size:1rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


class DemoShop:
    """A tiny shop whose checkout serves at most ``capacity`` sessions at once."""

    def __init__(self, *, capacity: int, session_idle_seconds: int) -> None:
        self.capacity = capacity
        self.session_idle_seconds = session_idle_seconds
        self.sessions: dict[str, float] = {}
        """Checkout sessions seen, by X-WaitingRoom-Session, with when last seen."""
        self.overloads = 0
        """Checkout requests refused because the shop was full (the 2008 failure)."""
        self.overloaded_at = -math.inf
        """When it last refused a checkout for being full (``time.monotonic``)."""
        self.peak_sessions = 0
        """Most checkout sessions the shop has had at once."""
        self.broken = False
        """Set from the catalogue page: the order system fails like on launch day."""
        self.orders: dict[str, dict[str, object]] = {}
        """Orders replayed from data capture, by Idempotency-Key."""
        self.mail: list[dict[str, str]] = []
        """Emails the waiting room sent (notify-me), newest last: shown at /notices."""
        self.app = Starlette(routes=[
            Route("/", self.catalogue),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/checkout", self.checkout, methods=["GET", "POST"]),
            Route("/ops/{action:str}", self.ops, methods=["POST"]),
            Route("/health", self.health),
            Route("/api/orders", self.api_orders, methods=["GET", "POST"]),
            Route("/api/stats", self.api_stats),
            Route("/notices", self.notices),
        ])

    def _page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(SHOP_PAGE.format(title=escape(title), body=body), status)

    async def catalogue(self, request: Request) -> Response:
        """The launch catalogue: open to everyone, no queue."""
        return self._page("waitPhone 3G launch", "<p>The waitPhone 3G, on sale today.</p>"
                          '<p><a class="button" href="/checkout">Buy now</a> '
                          '<a href="/login">Log in</a></p><hr>'
                          f"<p>Demo controls: the order system is {self._state()}. "
                          f"{len(self.orders)} captured orders replayed so far. "
                          f'<a href="/notices">Notify-me messages sent</a> '
                          f"({len(self.mail)}).</p>"
                          '<form method="post" action="/ops/break" style="display:inline">'
                          "<button>Break the order system</button></form> "
                          '<form method="post" action="/ops/fix" style="display:inline">'
                          "<button>Fix it</button></form>")

    def _state(self) -> str:
        """The order system as its front page tells it: down, overloaded (it refused a
        checkout in the last half minute) or up, with its places in use."""
        if self.broken:
            return "<b>DOWN</b> (broken on purpose)"
        places = f"{len(self.sessions)} of {self.capacity} checkout places in use"
        if time.monotonic() - self.overloaded_at < _OVERLOAD_SHOWN_SECONDS:
            return (f"<b>OVERLOADED</b>: it refused checkouts in the last "
                    f"{_OVERLOAD_SHOWN_SECONDS} s, every place taken ({self.overloads} "
                    f"refused so far; {places})")
        return f"<b>up</b> ({places})"

    async def ops(self, request: Request) -> Response:
        """Demo control: ``/ops/break`` makes the checkout fail, ``/ops/fix`` mends it."""
        self.broken = request.path_params["action"] == "break"
        return Response(status_code=303, headers={"location": "/"})

    async def health(self, request: Request) -> Response:
        """What the waiting room's breaker probes while half-open."""
        return Response("down" if self.broken else "ok", 503 if self.broken else 200)

    async def api_orders(self, request: Request) -> Response:
        """The order API ``waitingroom replay`` posts captured orders to (idempotent)."""
        if request.method == "GET":
            return JSONResponse(self.orders)
        if self.broken:
            return Response("order system down", 503)
        key = request.headers.get("idempotency-key", "")
        if not key:
            return Response("Idempotency-Key required", 400)
        created = key not in self.orders
        self.orders.setdefault(key, await request.json())
        return JSONResponse({"reference": key}, 201 if created else 200)

    async def api_stats(self, request: Request) -> Response:
        """What the shop has seen: the load test's check that the room kept it whole."""
        return JSONResponse({"capacity": self.capacity, "sessions": len(self.sessions),
                             "peak_sessions": self.peak_sessions,
                             "overloads": self.overloads})

    async def notices(self, request: Request) -> Response:
        """The notify-me emails the room sent, with their one-time links (the demo's
        stand-in for the shoppers' inboxes)."""
        items = "".join(
            f"<li><b>To {escape(m['to'])}</b>: {escape(m['subject'])}<br>"
            + _LINK.sub(lambda u: f'<a href="{u.group(0)}">{u.group(0)}</a>', escape(m["body"]))
            + "</li>" for m in reversed(self.mail))
        return self._page("Notify-me messages", (f"<ol>{items}</ol>" if items else
                          "<p>None yet: join the line, ask to be told when it is your turn, "
                          "and come back here when it is.</p>") + "<p><a href='/'>Back</a></p>")

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """The demo's mail server (aiosmtpd calls this): keep each email for /notices."""
        message = message_from_bytes(envelope.content, policy=policy.default)
        body = message.get_body(("plain",))
        self.mail.append({"to": ", ".join(envelope.rcpt_tos), "subject": str(message["subject"]),
                          "body": body.get_content() if body else ""})
        return "250 OK"

    async def login(self, request: Request) -> Response:
        """Always open, like account creation on launch day."""
        return self._page("Log in", "<p>Logins are always open.</p><p><a href='/'>Back</a></p>")

    async def checkout(self, request: Request) -> Response:
        """The order flow: fails loudly past its capacity, like the 2008 site."""
        now = time.monotonic()
        for sid, seen in list(self.sessions.items()):
            if now - seen > self.session_idle_seconds:
                del self.sessions[sid]
        if self.broken:
            return self._page("ORDER SYSTEM DOWN", "<p>The activation system has failed."
                              "</p><p>This is the shop's own error page: the waiting room "
                              "takes over within a second. <a href='/checkout'>Try again"
                              "</a> and it asks for your details instead.</p>", 503)
        sid = request.headers.get("x-waitingroom-session") or "anonymous-" + secrets.token_hex(4)
        if sid not in self.sessions and len(self.sessions) >= self.capacity:
            self.overloads += 1
            self.overloaded_at = now
            return self._page("ORDER SYSTEM OVERLOADED", "<p>Too many sessions: your order "
                              "was lost. This is what launch day looked like without a "
                              "waiting room.</p>", 503)
        self.sessions[sid] = now
        self.peak_sessions = max(self.peak_sessions, len(self.sessions))
        if request.method == "POST":
            del self.sessions[sid]
            response = self._page("Order placed", f"<p>Thank you! Order <b>{escape(sid)}</b> "
                                  "is confirmed.</p><p><a href='/'>Back to the shop</a></p>")
            response.headers["X-WaitingRoom-Release"] = "1"
            return response
        return self._page("Checkout", f"<p>You're in ({len(self.sessions)} of "
                          f"{self.capacity} checkout places in use).</p>"
                          '<form method="post"><button>Place order</button></form>')


_OVERLOAD_SHOWN_SECONDS = 30
"""The front page says "overloaded" this long after a refused checkout."""
_LINK = re.compile(r"https?://[^\s<>\"']+")


def demo_settings(
    *, redis_url: str, shop_port: int, port: int, capacity: int, spool_dir: str,
    admin_token: str = "", smtp_port: int = 0, crowd: bool = False,
) -> Settings:
    """The waiting room of the demo: checkout gated, a quick breaker, a fresh secret;
    with ``admin_token`` the admin API, with ``smtp_port`` notify-me by email; with a
    ``crowd`` (which comes from this machine, as you do) no limit on new places per
    network, which would count the crowd's places against your own windows."""
    return Settings(
        new_places_per_minute_per_network=0 if crowd else 30,
        admin_token=(f"demo:{admin_token}",) if admin_token else (),
        smtp_url=f"smtp://127.0.0.1:{smtp_port}" if smtp_port else "",
        public_url=f"http://127.0.0.1:{port}" if smtp_port else "",
        origin=f"http://127.0.0.1:{shop_port}", port=port, capacity=capacity,
        redis_url=redis_url, secret=(secrets.token_urlsafe(32),),
        gated_paths=("/checkout*",), session_idle_seconds=120, capture_spool_dir=spool_dir,
        # The first failure opens the breaker (at the next half-second report): in the
        # demo, one shopper's failed page is enough evidence.
        breaker_window_seconds=5, breaker_min_requests=1, breaker_cooldown_seconds=10,
        health_check_url=f"http://127.0.0.1:{shop_port}/health",
        shop_name="waitPhone 3G launch",
        message="Welcome to the waitPhone 3G launch! Places are given first come, "
                "first served.",
    )


async def run_demo(*, port: int = 8000, capacity: int = 3, crowd: int = 0) -> None:
    """Run Redis, a mail sink, the shop and the waiting room until interrupted; with
    ``crowd``, that many make-believe shoppers in turn (:mod:`demo_crowd`)."""
    from aiosmtpd.controller import Controller

    if port_in_use("127.0.0.1", port):
        raise ConfigError("--port", f"127.0.0.1:{port} is already in use: stop what listens "
                          "there or pick another port (waitingroom demo --port 8001, or "
                          "make demo PORT=8001)")
    token = secrets.token_urlsafe(16)
    # Every line the demo's servers log has a time (uvicorn's own format has none).
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.WARNING)
    with RedisServer() as redis_server:
        shop_port = free_port()
        # The shop forgets an idle session a second before the room ends it, so a slot
        # the room hands on is always free at the shop too.
        shop = DemoShop(capacity=capacity, session_idle_seconds=119)
        mail = Controller(shop, hostname="127.0.0.1", port=free_port())
        mail.start()
        settings = demo_settings(redis_url=redis_server.url, shop_port=shop_port, port=port,
                                 capacity=capacity, admin_token=token, smtp_port=mail.port,
                                 spool_dir=str(redis_server.directory / "spool"),
                                 crowd=crowd > 0)
        servers = [
            uvicorn.Server(uvicorn.Config(shop.app, host="127.0.0.1", port=shop_port,
                                          log_level="warning", log_config=None)),
            uvicorn.Server(uvicorn.Config(build_proxy_app(settings), host="127.0.0.1",
                                          port=port, log_level="warning", log_config=None,
                                          server_header=False, date_header=False)),
        ]
        def stop(signum: int, frame: object) -> None:
            for server in servers:  # uvicorn stops one, then hands the signal on to us
                server.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            serving = asyncio.gather(*(s.serve() for s in servers))
            # uvicorn marks a server started with a flag, not an event.
            while not all(s.started for s in servers) and not serving.done():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            shoppers = Crowd(f"http://127.0.0.1:{port}", crowd)
            if all(s.started for s in servers):
                print(_welcome(port, capacity, token, redis_server.url, crowd), flush=True)
                shoppers.start()
            try:
                await serving
            finally:
                await shoppers.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            mail.stop()


def _welcome(port: int, capacity: int, token: str, redis_url: str, crowd: int) -> str:
    """What the demo prints once it is listening."""
    site = f"http://127.0.0.1:{port}"
    crowd_tip = (f"{crowd} make-believe shoppers are coming and going: watch the line on "
                 "the dashboard, and join it" if crowd else
                 "add a crowd of make-believe shoppers: waitingroom demo --crowd 10")
    return f"""waitingroom demo is running (Ctrl-C to stop):
  the shop, behind the waiting room   {site}/   (checkout capacity {capacity})
  the ops dashboard                   {site}/_wr/admin/dashboard
      admin token                     {token}
  notify-me messages sent             {site}/notices
Try it:
  - {crowd_tip};
  - open {site}/checkout in {capacity + 1} or more browsers (or private windows): the
    first {capacity} get in, the rest wait in line, live;
  - the shop holds {capacity} checkouts: raise the room's capacity past that on the
    dashboard (it warns: the most the shop has served well so far) and the shop
    fails; the breaker steps in within a second, the line keeps its places and
    shoppers leave their details instead;
  - press "Break the order system" on the shop's front page: checkouts switch to the
    data-capture form. Fix it, then replay what was captured:
      waitingroom replay --redis-url {redis_url} --to {site}/api/orders
  - from a terminal:
      WAITINGROOM_ADMIN_TOKEN={token} waitingroom admin --url {site} show"""
