"""What the browser tests share: Debian's chromium under Playwright, a page, and
the screenshots directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from support.tools import require_binary


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium (Playwright's own browser download cannot work offline),
    started and stopped by this module: pytest-playwright's session-wide fixtures
    would leave Playwright's event loop running in the main thread for every later
    test, and `asyncio.run` there refuses to start."""
    executable = require_binary("chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = os.environ.get("MTLSDEMO_SCREENSHOTS")
    path = Path(out) if out else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
