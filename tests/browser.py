"""Debian's Chromium driven by Playwright, for tests that must see a page as a browser does.

No browser is downloaded: Playwright drives /usr/bin/chromium (apt package `chromium`), which
`.ci/run` and `make test` install. A missing browser fails the test with the command that fixes it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("NEWSLETTER_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch() -> Iterator:
    """Yield a launched Chromium; the `browser` fixture in conftest wraps this."""
    from playwright.sync_api import sync_playwright

    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"Chromium not found at {CHROMIUM}; install it with: apt-get install -y chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield instance
        instance.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
