"""Baseline apps the benchmark measures waitingroom against, run under the same uvicorn.

- ``starlette_json``: a bare Starlette JSON route (the bar for the status poll).
- ``starlette_incr``: the same route doing one Redis ``INCR`` (the bar for ticketing a
  new arrival: the least a Redis-backed queue does per arrival).
- ``origin``: a raw ASGI "ok" origin.
- ``aiohttp_passthrough``: the least a raw-ASGI proxy forwarding with aiohttp does:
  request headers in, status, headers and whole body out (the bar for an admitted
  request through ``waitingroom serve``).
"""

from __future__ import annotations

import os

import aiohttp
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


async def _status(request: Request) -> JSONResponse:
    return JSONResponse({"room": "default", "state": "queued", "position": 1,
                         "eta_seconds": None, "message": None})


starlette_json = Starlette(routes=[Route("/_wr/status", _status)])


class _Counter:
    def __init__(self) -> None:
        self.redis: Redis | None = None

    async def ticket(self, request: Request) -> JSONResponse:
        if self.redis is None:
            self.redis = Redis.from_url(os.environ["BENCH_REDIS_URL"], max_connections=64)
        return JSONResponse({"ticket": await self.redis.incr("bench:arrivals")})


starlette_incr = Starlette(routes=[Route("/checkout", _Counter().ticket)])


async def origin(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every request with ``ok``."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Passthrough:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.origin = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self.session is None:
            self.origin = os.environ["BENCH_ORIGIN"]
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000), auto_decompress=False)
        # The least a working pass-through does: forward the request's headers too.
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k != b"host"]
        async with self.session.request(scope["method"], self.origin + scope["path"],
                                        headers=headers) as r:
            body = await r.read()
            await send({"type": "http.response.start", "status": r.status,
                        "headers": [(k.lower(), v) for k, v in r.raw_headers]})
            await send({"type": "http.response.body", "body": body})


aiohttp_passthrough = _Passthrough()
