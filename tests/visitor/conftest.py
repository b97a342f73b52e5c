"""The real browser the visitor tests drive (see ``chromium.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.visitor.chromium import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """Debian's Chromium, headless, for one test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
