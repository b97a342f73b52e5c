"""An ASGI app served by uvicorn on loopback inside the running event loop, for as
long as a ``with`` block lasts: what the tests and the load tests stand their shops,
origins and rooms up with (beside :mod:`waitingroom.tools.redis_server`'s Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

from waitingroom.tools.redis_server import free_port


@asynccontextmanager
async def serve_in_process(app: ASGIApp, port: int | None = None, *,
                           root_path: str = "") -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on loopback (a free port by default; ``root_path`` as
    ``uvicorn --root-path``); yield its URL. Its lifespan runs: a room's start-up and
    shutdown happen as under ``serve``."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", proxy_headers=False,
                                           server_header=False, date_header=False,
                                           root_path=root_path))
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn marks a server started with a flag, not an event
        if task.done():
            task.result()  # raises the start-up error
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
