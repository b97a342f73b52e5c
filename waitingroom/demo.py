"""``waitingroom demo``: a launch-day shop, a private Redis and the waiting room in front.

The shop is the 2008 launch site in miniature: the catalogue and login are always
open, but the checkout can serve only a few concurrent sessions and fails loudly
past that. The waiting room keeps it under that limit.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from html import escape

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from waitingroom._redis_server import RedisServer, free_port
from waitingroom.app import build_proxy_app
from waitingroom.settings import Settings

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
        self.app = Starlette(routes=[
            Route("/", self.catalogue),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/checkout", self.checkout, methods=["GET", "POST"]),
        ])

    def _page(self, title: str, body: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(SHOP_PAGE.format(title=escape(title), body=body), status)

    async def catalogue(self, request: Request) -> Response:
        """The launch catalogue: open to everyone, no queue."""
        return self._page("waitPhone 3G launch", "<p>The waitPhone 3G, on sale today.</p>"
                          '<p><a class="button" href="/checkout">Buy now</a> '
                          '<a href="/login">Log in</a></p>')

    async def login(self, request: Request) -> Response:
        """Always open, like account creation on launch day."""
        return self._page("Log in", "<p>Logins are always open.</p><p><a href='/'>Back</a></p>")

    async def checkout(self, request: Request) -> Response:
        """The order flow: fails loudly past its capacity, like the 2008 site."""
        now = time.monotonic()
        for sid, seen in list(self.sessions.items()):
            if now - seen > self.session_idle_seconds:
                del self.sessions[sid]
        sid = request.headers.get("x-waitingroom-session") or "anonymous-" + secrets.token_hex(4)
        if sid not in self.sessions and len(self.sessions) >= self.capacity:
            self.overloads += 1
            return self._page("ORDER SYSTEM OVERLOADED", "<p>Too many sessions: your order "
                              "was lost. This is what launch day looked like without a "
                              "waiting room.</p>", 503)
        self.sessions[sid] = now
        if request.method == "POST":
            del self.sessions[sid]
            response = self._page("Order placed", f"<p>Thank you! Order <b>{escape(sid)}</b> "
                                  "is confirmed.</p><p><a href='/'>Back to the shop</a></p>")
            response.headers["X-WaitingRoom-Release"] = "1"
            return response
        return self._page("Checkout", f"<p>You're in ({len(self.sessions)} of "
                          f"{self.capacity} checkout places in use).</p>"
                          '<form method="post"><button>Place order</button></form>')


async def run_demo(*, port: int = 8000, capacity: int = 3) -> None:
    """Run Redis, the shop and the waiting room until interrupted."""
    with RedisServer() as redis_server:
        shop_port = free_port()
        shop = DemoShop(capacity=capacity, session_idle_seconds=120)
        settings = Settings(
            origin=f"http://127.0.0.1:{shop_port}", port=port, capacity=capacity,
            redis_url=redis_server.url, secret=(secrets.token_urlsafe(32),),
            gated_paths=("/checkout*",), session_idle_seconds=120,
            message="Welcome to the waitPhone 3G launch! Places are given first come, "
                    "first served.",
        )
        servers = [
            uvicorn.Server(uvicorn.Config(shop.app, host="127.0.0.1", port=shop_port,
                                          log_level="warning")),
            uvicorn.Server(uvicorn.Config(build_proxy_app(settings), host="127.0.0.1",
                                          port=port, log_level="warning",
                                          server_header=False, date_header=False)),
        ]
        print(f"waitingroom demo: open http://127.0.0.1:{port}/  (checkout capacity "
              f"{capacity}; Redis {redis_server.url}; Ctrl-C to stop)", flush=True)
        await asyncio.gather(*(s.serve() for s in servers))
