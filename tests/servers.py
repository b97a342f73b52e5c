"""Real servers on loopback for end-to-end tests: in-process uvicorn and subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive

from waitingroom._redis_server import free_port


@asynccontextmanager
async def serve_in_process(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on loopback (a free port by default); yield its URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", proxy_headers=False,
                                           server_header=False, date_header=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextmanager
def waitingroom_serve(env: Mapping[str, str], *args: str) -> Iterator[str]:
    """Run ``waitingroom serve`` as a separate process; yield its base URL once healthy."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "waitingroom.cli", "serve", "--port", str(port), *args],
        env={**os.environ, **env}, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"waitingroom serve exited: {process.stderr.read().decode()}")
            try:
                if httpx.get(url + "/_wr/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("waitingroom serve did not become healthy")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


async def read_body(receive: Receive) -> bytes:
    """The whole request body an ASGI app receives."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
