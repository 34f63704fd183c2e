"""The email's scorecard and cards in a real Chromium: lens by lens on a phone, side by side and level on
a desktop, axe-clean in light and dark (the issue, and the confirmation, welcome and re-engagement
emails), with screenshots in test-artifacts/ for a person to look at."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.letters import LatestIssue, Letters, WelcomeFor
from newsletter.notices import NoticeKind, Notices
from newsletter.render import Renderer
from newsletter.samples import issue_from, sample_comparisons
from tests.axe import EMAIL_RULES_OFF, describe, violations
from tests.browser import artifact
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.sqlite_pass_only  # the page's or email's HTML, the same on any store

SCHEMES = ["light", "dark"]
WIDTHS = [600, 375]


def write_issue(directory, name: str, **settings) -> object:
    config = Settings(_env_file=None, secret_key=TEST_KEY, **settings)
    issue = issue_from(sample_comparisons()[:3], config, week=Week(2026, 48))
    page, _ = Renderer().render_issue(issue).personalise(token="preview-token", email="reader@example.com")
    path = directory / f"{name}.html"
    path.write_text(page, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scorecard")
    notices = Notices(Settings(_env_file=None, secret_key=TEST_KEY))
    files = {
        "issue": write_issue(directory, "issue"),
        "issue-excerpt": write_issue(directory, "issue-excerpt", scorecard="excerpt"),
    }
    for kind in NoticeKind:  # every email a reader can get besides the issue
        path = directory / f"{kind}.html"
        path.write_text(notices.message(kind, subscriber_id=1, email="reader@example.com").html, "utf-8")
        files[str(kind)] = path
    letters = Letters(Settings(_env_file=None, secret_key=TEST_KEY, timezone="Europe/Berlin"))
    reader = WelcomeFor(1, "reader@example.com", frozenset({"Voice & Audio"}), datetime.now(UTC))
    files["welcome"] = directory / "welcome.html"
    files["welcome"].write_text(letters.welcome(reader, LatestIssue("2026-w48", "A vs B, plus 2 more")).html)
    question = letters.still_want(4, date(2026, 12, 21)).message(
        ask_id=1, subscriber_id=1, email=reader.email
    )
    files["still-want"] = directory / "still-want.html"
    files["still-want"].write_text(question.html, encoding="utf-8")
    return files


def open_email(browser, path, width: int, scheme: str = "light"):
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
    )
    page.goto(path.as_uri())
    return page


# Every quote card of the issue: its box, and the comparison, lens and tool its quote belongs to.
QUOTE_CARDS = """(reviews) => Array.from(document.querySelectorAll('.quote')).flatMap((cell) => {
    const text = cell.textContent.replace(/\\s+/g, ' ');
    const review = reviews.find((r) => text.includes(r.start));
    if (!review) return [];
    const box = cell.closest('.half').getBoundingClientRect();
    return [{ comparison: review.comparison, lens: review.lens, tool: review.tool, x: box.x,
              y: box.y + scrollY, width: box.width, height: box.height }];
})"""


def quote_cards(page) -> list[dict]:
    """The quote cards of all three comparisons of the issue, top to bottom, left to right."""
    reviews = [
        {"comparison": index, "lens": r.lens, "tool": r.tool, "start": " ".join(r.quote.split())[:60]}
        for index, comparison in enumerate(sample_comparisons()[:3])
        for r in comparison.reviews
    ]
    cards = page.evaluate(QUOTE_CARDS, reviews)
    assert len(cards) == len(reviews), "every quote of every comparison has its card"
    return sorted(cards, key=lambda card: (card["y"], card["x"]))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_on_a_phone_each_lens_shows_the_left_tools_quote_then_the_right_tools(browser, files, scheme):
    page = open_email(browser, files["issue"], 375, scheme)
    cards = quote_cards(page)
    lenses = list(dict.fromkeys((card["comparison"], card["lens"]) for card in cards))
    expected = [(*lens, side) for lens in lenses for side in ("left", "right")]
    assert [(card["comparison"], card["lens"], card["tool"]) for card in cards] == expected
    for above, below in itertools.pairwise(cards):
        assert below["y"] >= above["y"] + above["height"] - 1, "stacked: each card below the one before"
    for left, right in zip(cards[0::2], cards[1::2], strict=True):
        assert right["y"] - (left["y"] + left["height"]) < 60, "nothing stands between a lens's two quotes"
    assert all(card["width"] > 300 for card in cards), "each card takes the phone's width"
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot_scorecard(page, f"scorecard-375-{scheme}.png")
    page.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_on_a_desktop_a_lenss_two_quotes_share_a_row_and_end_level(browser, files, scheme):
    page = open_email(browser, files["issue"], 600, scheme)
    cards = quote_cards(page)
    for left, right in zip(cards[0::2], cards[1::2], strict=True):
        assert (left["comparison"], left["lens"]) == (right["comparison"], right["lens"]), "one lens a row"
        assert (left["tool"], right["tool"]) == ("left", "right")
        assert abs(left["y"] - right["y"]) < 1, "one row"
        assert right["x"] >= left["x"] + left["width"], "side by side"
        assert abs(left["height"] - right["height"]) < 1, "the two cards end level"
        assert abs(left["width"] - right["width"]) < 1, "and share the width evenly"
    assert page.evaluate("document.documentElement.scrollWidth") <= 600
    screenshot_scorecard(page, f"scorecard-600-{scheme}.png")
    page.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_paired_tool_cards_end_level_on_a_desktop(browser, files, scheme):
    page = open_email(browser, files["issue"], 600, scheme)
    for comparison in sample_comparisons()[:3]:
        left, right = (
            page.locator(".card", has=page.locator(".tool-name", has_text=tool.name)).first.bounding_box()
            for tool in (comparison.tools.left, comparison.tools.right)
        )
        assert abs(left["y"] - right["y"]) < 1 and abs(left["height"] - right["height"]) < 1, comparison.slug
        assert abs(left["width"] - right["width"]) < 1
        assert right["x"] >= left["x"] + left["width"], "side by side"
    page.close()


def screenshot_scorecard(page, name: str) -> None:
    """The first comparison's scorecard, from its verdict grid to its last lens."""
    box = page.evaluate("""() => {
        const grid = document.querySelector('th[scope=col]').closest('table.card').getBoundingClientRect();
        const quotes = Array.from(document.querySelectorAll('.duo')).slice(1, 5);
        const last = quotes[quotes.length - 1].getBoundingClientRect();
        return { x: 0, y: grid.y + scrollY - 8, width: innerWidth, height: last.bottom - grid.y + 16 };
    }""")
    page.screenshot(path=artifact(name), full_page=True, clip=box)


ROLES = """() => Object.fromEntries(['.tx > div', '.muted', '.quote', '.accent', '.ship', '.skip', 'a.button']
    .map((selector) => [selector, getComputedStyle(document.querySelector(selector)).color]))"""


def test_dark_mode_keeps_a_colour_per_role_and_the_button_white_on_indigo(browser, files):
    page = open_email(browser, files["issue"], 600, "dark")
    colours = page.evaluate(ROLES)
    assert len(set(colours.values()) - {colours["a.button"]}) == 6, colours
    button = page.locator("a.button").first
    assert colours["a.button"] == "rgb(255, 255, 255)"
    assert button.evaluate("a => getComputedStyle(a.parentElement).backgroundColor") == "rgb(67, 56, 202)"
    page.close()


CASES = [
    (name, width, scheme)
    for name in ("issue", "issue-excerpt", *map(str, NoticeKind), "welcome", "still-want")
    for width in WIDTHS
    for scheme in SCHEMES
]


@pytest.mark.parametrize(("name", "width", "scheme"), CASES, ids=[f"{n}-{w}-{s}" for n, w, s in CASES])
def test_the_emails_have_no_axe_violation(browser, files, name, width, scheme):
    page = open_email(browser, files[name], width, scheme)
    found = violations(page, rules_off=EMAIL_RULES_OFF)
    page.close()
    assert not found, f"{name} at {width} px, {scheme}:\n{describe(found)}"
