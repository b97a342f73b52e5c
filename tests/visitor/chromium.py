"""Debian's Chromium for the real-browser tests (driven by Playwright; never a browser
download), and what they share."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NEEDS_CHROMIUM = pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                                    reason="Debian chromium not installed")
# Flags for a closed network: no background connections, no GPU, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


class Beacons:
    """Wraps the room's app, recording the beacons it answers, in order."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any]) -> None:
        self.app = app
        self.heard: list[str] = []
        self.arrived = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http" and scope["path"] in ("/_wr/leave", "/_wr/here"):
            self.heard.append(scope["path"].removeprefix("/_wr/"))
            self.arrived.set()

    async def wait_for(self, *names: str) -> None:
        """Until the last beacons answered are ``names``, in that order."""
        while self.heard[-len(names):] != list(names):
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 30)
