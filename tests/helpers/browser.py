"""A real browser for the dashboard's tests: Debian's chromium, driven by Playwright.

Playwright's own browser downloads are never used (``playwright install`` is not run): the
tests launch ``/usr/bin/chromium``, which ``make browser`` installs when it is missing.
Screenshots go to ``DF_SCREENSHOT_DIR`` when set, else to a directory of the pytest run.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("DF_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 860}


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (it installs Debian's chromium)")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("DF_SCREENSHOT_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


async def screenshot(page: Page, directory: Path, name: str) -> Path:
    """The whole page as ``<name>.png``."""
    path = directory / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
