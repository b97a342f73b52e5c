"""The capture form the capture tests fill in, and reading back what was stored."""

from __future__ import annotations

import re

from waitingroom.engine import CapturedRecord, Engine

ROOM = "default"
FIELDS = ("name:text:required:40,email:email:required,plan:choice(monthly|prepay),"
          "consent:consent:required")
GOOD = {"name": "Ann Smith", "email": "ann@example.com", "plan": "monthly", "consent": "yes"}


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


async def stored(engine: Engine) -> list[CapturedRecord]:
    return [r async for r in engine.captures.all(ROOM)]
