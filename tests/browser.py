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
# A page's waits, in ms: generous, since CI's two cores may be running a dozen servers and browsers.
PAGE_TIMEOUT_MS = int(os.environ.get("NEWSLETTER_TEST_PAGE_TIMEOUT_MS", "90000"))
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
        _patient(instance)
        yield instance
        instance.close()


def _patient(instance) -> None:
    """Every context this browser makes waits PAGE_TIMEOUT_MS for a navigation or a locator, and every
    `expect` too, instead of Playwright's 30 s and 5 s: a slow machine is not a failing page."""
    from playwright.sync_api import expect

    expect.set_options(timeout=PAGE_TIMEOUT_MS)
    new_context = instance.new_context

    def new_patient_context(*args, **kwargs):
        context = new_context(*args, **kwargs)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        return context

    new_page = instance.new_page

    def new_patient_page(*args, **kwargs):
        page = new_page(*args, **kwargs)  # its own context, closed with the page
        page.context.set_default_timeout(PAGE_TIMEOUT_MS)
        return page

    instance.new_context = new_patient_context
    instance.new_page = new_patient_page


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
