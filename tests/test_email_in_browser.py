"""The rendered issue in a real browser: side by side at 600 px, stacked at 375 px, readable in dark."""

from __future__ import annotations

import pytest

from newsletter.render import Renderer
from tests.browser import artifact
from tests.test_render import issue_of

pytestmark = pytest.mark.sqlite_pass_only  # the page's or email's HTML, the same on any store


@pytest.fixture(scope="module")
def issue_file(tmp_path_factory):
    from newsletter.config import Settings
    from newsletter.samples import sample_comparisons

    settings = Settings(_env_file=None, secret_key="x" * 40)
    page, _ = (
        Renderer()
        .render_issue(issue_of(sample_comparisons()[:3], settings))
        .personalise(token="preview-token", email="reader@example.com")
    )
    path = tmp_path_factory.mktemp("issue") / "issue.html"
    path.write_text(page, encoding="utf-8")
    return path


def open_issue(browser, path, width: int, scheme: str = "light"):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    # Nothing may load from the network: an email that needs it is broken in half the clients.
    page.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
    )
    page.goto(path.as_uri())
    return page


def tool_cards(page):
    """Bounding boxes of the first comparison's two tool cards, found by their names."""
    names = ("Claude Haiku Open Weights", "Gemini 2.5 Flash Lite")
    cards = [page.locator(".card", has=page.locator(".tool-name", has_text=name)).first for name in names]
    return [card.bounding_box() for card in cards]


def test_tools_stand_side_by_side_at_600px(browser, issue_file):
    page = open_issue(browser, issue_file, 600)
    left, right = tool_cards(page)
    assert abs(left["y"] - right["y"]) < 2, "both cards start on the same line"
    assert right["x"] >= left["x"] + left["width"] - 1
    assert page.evaluate("document.documentElement.scrollWidth") <= 600
    page.screenshot(path=artifact("issue-600.png"), full_page=True)
    page.close()


def test_tools_stack_without_horizontal_scroll_at_375px(browser, issue_file):
    page = open_issue(browser, issue_file, 375)
    left, right = tool_cards(page)
    assert right["y"] >= left["y"] + left["height"] - 1, "the second card sits below the first"
    assert left["width"] > 300 and right["width"] > 300, "each card takes the phone's width"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=artifact("issue-375.png"), full_page=True)
    page.close()


def test_dark_mode_turns_the_page_dark_and_keeps_text_light(browser, issue_file):
    page = open_issue(browser, issue_file, 600, scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    name_colour = page.evaluate("getComputedStyle(document.querySelector('.tool-name')).color")
    assert background == "rgb(17, 24, 39)"
    assert name_colour == "rgb(229, 231, 235)"
    page.screenshot(path=artifact("issue-600-dark.png"), full_page=True)
    page.close()
