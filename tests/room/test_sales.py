"""The origin's stock reports as a room counts them: hostile values are ignored, and a
Redis out of reach loses the report, never the shopper's answer."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from waitingroom.engine import Engine
from waitingroom.room.sales import Sales, units
from waitingroom.tools.redis_server import free_port


@pytest.mark.parametrize(("header", "expected"), [
    (b"12", 12), (b" 7 ", 7), (b"0", 0), (b"1000000000", 1_000_000_000),
    (b"1000000001", None), (b"-3", None), (b"+3", None), (b"3.0", None), (b"1e3", None),
    (b"", None), (b"\xd9\xa3", None), (b"9" * 40, None), (b"0x10", None),
])
def test_a_units_header_is_a_plain_whole_number_or_nothing(
    header: bytes, expected: int | None,
) -> None:
    assert units(header) == expected


async def test_a_report_redis_cannot_take_is_logged_and_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = Engine(Redis(port=free_port(), socket_connect_timeout=0.5), grace_seconds=60,
                  session_idle_seconds=300, session_max_seconds=1800)
    changed: list[bool] = []

    async def on_change() -> None:
        changed.append(True)

    try:
        with caplog.at_level(logging.WARNING, logger="waitingroom"):
            await Sales(gone, "default", on_change).heard(b"1", b"40", known_stock=50)
    finally:
        await gone.aclose()
    assert changed == []
    assert any("could not count the origin's stock report" in r.getMessage()
               for r in caplog.records)
