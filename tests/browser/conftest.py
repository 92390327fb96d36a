"""Browser tests: Playwright driving the Chromium of the system's packages (Debian's `chromium`;
Playwright cannot download browsers here) against the same running stack as the e2e tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# The e2e helpers' fixtures (HTTP client, an admin, the stack's environment) serve here too.
from tests.e2e.conftest import _remember_stack, admin_token, client  # noqa: F401
from ticketing import ROOT

SCREENSHOTS = ROOT / ".data" / "screenshots"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    """The system's Chromium (Debian: /usr/bin/chromium), if one is installed."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


# Module-scoped, not session-scoped: while Playwright's sync API is running it keeps an asyncio
# event loop running in this thread, and every later test calling asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
