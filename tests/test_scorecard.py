"""The reviewer scorecard and what the email shows of each tool: rows by lens, the verdict grid, the
lens-aligned quotes in HTML and text, the excerpt mode, and the faults the design review measured."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.notices import NoticeKind, Notices
from newsletter.render import Renderer
from newsletter.samples import issue_from
from newsletter.views import ReviewView, Share, first_sentence, scorecard_rows, tool_view
from tests.conftest import TEST_KEY

SITE = "https://verdicts.example.com"
LENSES = ["Developer experience", "Competition", "Thesis", "Business"]
BEFORE_REDESIGN_BYTES = 78_544  # the demo issue's HTML before the scorecard grid (2026-12)


def settings_with(**values) -> Settings:
    return Settings(_env_file=None, secret_key=TEST_KEY, **values)


def render(items, **settings):
    issue = issue_from(items, settings_with(**settings), week=Week(2026, 48))
    rendered = Renderer().render_issue(issue)
    page, text = rendered.personalise(token="tok", email="ada@example.com")
    return issue, rendered, page, text


def visible(markup: str) -> str:
    text = re.sub(r"<(style|title)[^>]*>.*?</\1>", " ", markup, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


# --- rows by lens ------------------------------------------------------------------------------------


def tool(name: str, *reviews: tuple[str, str, str]):
    fields = {"vendor": None, "category": "C", "tagline": "t", "description": "d", "entry_price": "Free"}
    return tool_view(
        SimpleNamespace(name=name, url=None, **fields),
        slug=name.lower(),
        panel=Share(0, 0),
        community=Share(0, 0),
        reviews=[
            ReviewView(reviewer, lens, verdict, f"{name} {lens} {reviewer}")
            for reviewer, lens, verdict in reviews
        ],
    )


def test_the_seed_reads_as_one_row_per_lens_with_both_tools_verdicts(samples):
    (seed,) = issue_from(samples[:1], settings_with(), week=Week(2026, 48)).comparisons
    rows = seed.scorecard
    assert [row.lens for row in rows] == LENSES
    assert [row.left.review.verdict for row in rows] == ["ship", "skip", "ship", "skip"]
    assert [row.right.review.verdict for row in rows] == ["ship"] * 4
    assert [(row.left.tool.name, row.right.tool.name) for row in rows] == [
        ("Claude Haiku Open Weights", "Gemini 2.5 Flash Lite")
    ] * 4


def test_a_lens_is_one_row_whoever_reviewed_it_and_however_it_is_spelled():
    left = tool("A", ("The Builder", "Developer experience", "ship"), ("The Skeptic", "Competition", "skip"))
    right = tool(
        "B", ("the  skeptic", "competition", "ship"), ("Guest Builder", "Developer  Experience", "skip")
    )
    rows = scorecard_rows(left, right)
    assert [row.lens for row in rows] == ["Developer experience", "Competition"]
    assert [(row.left.review.reviewer, row.right.review.reviewer) for row in rows] == [
        ("The Builder", "Guest Builder"),
        ("The Skeptic", "the  skeptic"),
    ]


def test_a_lens_one_side_lacks_keeps_its_row_with_an_empty_cell():
    left = tool("A", ("X", "Thesis", "ship"), ("Y", "Thesis", "skip"))
    right = tool("B", ("Y", "Thesis", "ship"), ("Z", "Business", "ship"))
    rows = scorecard_rows(left, right)
    pairs = [
        (r.lens, r.left.review and r.left.review.reviewer, r.right.review and r.right.review.reviewer)
        for r in rows
    ]
    assert pairs == [("Thesis", "X", None), ("Thesis", "Y", "Y"), ("Business", None, "Z")]


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("The primitive is simple: a file. The DX bet is x.", "The primitive is simple: a file."),
        ("Claude 3.5 Haiku wins. Then more.", "Claude 3.5 Haiku wins."),
        ("Pick e.g. Mistral here. Then more.", "Pick e.g. Mistral here."),
        ("GPT-4o vs. Claude? Yes. More.", "GPT-4o vs. Claude?"),
        ("It said “ship it.” Then more.", "It said “ship it.”"),
        ("one long sentence without an end", "one long sentence without an end"),
    ],
)
def test_the_first_sentence(text, sentence):
    assert first_sentence(text) == sentence


def test_a_first_sentence_past_the_limit_is_cut_at_a_word():
    cut = first_sentence("word " * 1000 + ". Next.", limit=240)
    assert len(cut) <= 240 and cut.endswith("word…")


# --- the email's HTML ----------------------------------------------------------------------------------


class Tables(HTMLParser):
    """Every non-layout table (no role=presentation): its rows as lists of (tag, scope, text)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[str, str | None, str]]]] = []
        self._stack: list[bool] = []
        self._cell: list | None = None

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "table":
            data = values.get("role") != "presentation"
            self._stack.append(data)
            if data:
                self.tables.append([])
        elif self._stack and self._stack[-1]:
            if tag == "tr":
                self.tables[-1].append([])
            elif tag in ("th", "td"):
                self._cell = [tag, values.get("scope"), ""]

    def handle_endtag(self, tag):
        if tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("th", "td") and self._cell is not None and self._stack and self._stack[-1]:
            self.tables[-1][-1].append((self._cell[0], self._cell[1], " ".join(self._cell[2].split())))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[2] += " " + data


def test_each_comparison_opens_its_scorecard_with_a_verdict_grid_of_header_cells(samples):
    _, _, page, _ = render(samples[:3])
    parser = Tables()
    parser.feed(page)
    assert len(parser.tables) == 3, "one verdict grid per comparison, and no other data table"
    header, *rows, total = parser.tables[0]
    assert header == [
        ("th", "col", "Lens"),
        ("th", "col", "Claude Haiku Open Weights"),
        ("th", "col", "Gemini 2.5 Flash Lite"),
    ]
    assert [row[0] for row in rows] == [("th", "row", lens) for lens in LENSES]
    assert [[cell[2] for cell in row[1:]] for row in rows] == [
        ["SHIP The Builder", "SHIP The Builder"],
        ["SKIP The Skeptic", "SHIP The Skeptic"],
        ["SHIP The Futurist", "SHIP The Futurist"],
        ["SKIP The Buyer", "SHIP The Buyer"],
    ]
    assert [cell[2] for cell in total] == ["Panel ship", "50% 2 of 4", "100% 4 of 4"]


def quote_positions(haystack: str, item) -> list[tuple[str, str, int]]:
    """(lens, side, index in haystack) of each quote, in the order the haystack shows them."""
    found = []
    for review in item.reviews:
        start = " ".join(review.quote.split())[:60]
        index = haystack.find(start)
        assert index >= 0, start
        found.append((review.lens, review.tool, index))
    return sorted(found, key=lambda entry: entry[2])


@pytest.mark.parametrize("part", ["html", "text"])
def test_quotes_follow_a_lens_at_a_time_the_left_tool_then_the_right(samples, part):
    _, _, page, text = render(samples[:3])
    haystack = visible(page) if part == "html" else " ".join(text.split())
    for item in samples[:3]:
        order = [(lens, side) for lens, side, _ in quote_positions(haystack, item)]
        lenses = list(dict.fromkeys(review.lens for review in item.reviews))
        assert order == [(lens, side) for lens in lenses for side in ("left", "right")], item.slug


def test_the_text_part_has_the_verdict_grid(samples):
    _, _, _, text = render(samples[:1])
    assert "  A = Claude Haiku Open Weights\n  B = Gemini 2.5 Flash Lite\n" in text
    assert re.search(r"\n  Competition +A: SKIP   B: SHIP\n", text)
    assert re.search(r"\n  Panel ship +A: 2 of 4   B: 4 of 4\n", text)
    assert "[SKIP] Claude Haiku Open Weights · The Skeptic" in text


def test_no_votes_reads_as_words_and_the_vendor_is_shown(samples):
    _, _, page, text = render(samples[:2])  # the seed has no votes; Cursor vs Windsurf has
    shown = visible(page)
    assert shown.count("No votes yet Community") == 2
    assert "—" not in re.sub(r"<[^>]+>", "", page.split("<body", 1)[1]).replace("— ", "").replace(" —", "")
    assert text.count("Community:   No votes yet") == 2
    assert "82% 50 votes Community" in shown, "a figure with votes stays a figure, its count beside it"
    for vendor in ("Anthropic", "Google DeepMind"):
        assert f"by {vendor}" in shown


def test_each_tool_card_shows_its_own_category_and_description(samples):
    item = samples[0]
    left = item.tools.left.model_copy(update={"category": "Research Models"})
    changed = item.model_copy(update={"tools": item.tools.model_copy(update={"left": left})})
    _, _, page, text = render([changed])
    shown = visible(page)
    assert "Research Models Claude Haiku Open Weights" in shown
    assert "Developer Tools Gemini 2.5 Flash Lite" in shown
    assert item.tools.left.description in shown and item.tools.right.description in shown
    assert "Category:    Research Models" in text


def _divs_with_padding(page: str) -> list[str]:
    return [tag for tag in re.findall(r"<div\b[^>]*>", page) if re.search(r"style=\"[^\"]*padding", tag)]


def test_spacing_is_on_table_cells_never_on_divs_which_outlook_ignores(samples):
    _, _, page, _ = render(samples[:3])
    confirm = Notices(settings_with()).message(NoticeKind.CONFIRM, subscriber_id=1, email="a@example.com")
    assert _divs_with_padding(page) == []
    assert _divs_with_padding(confirm.html) == []


def test_the_preheader_is_hidden_without_a_colour_matching_the_background(samples):
    issue, _, page, _ = render(samples[:3])
    (tag,) = re.findall(r"<div[^>]*>(?=" + re.escape(html.escape(issue.preheader, quote=False)) + ")", page)
    assert "display:none" in tag and "opacity:0" in tag
    assert "color" not in tag


def test_the_demo_issue_is_no_larger_than_before_the_grid_and_the_excerpt_smaller(samples):
    _, full, _, _ = render(samples[:3])
    _, short, _, _ = render(samples[:3], scorecard="excerpt")
    assert full.html.size <= BEFORE_REDESIGN_BYTES
    cut = sum(
        len(r.quote.encode()) - len(first_sentence(r.quote).encode()) for i in samples[:3] for r in i.reviews
    )
    link = 400  # the "every quote in full" row each comparison gains
    assert full.html.size - short.html.size >= cut - 3 * link, "the excerpt saves what it leaves out"


# --- NEWSLETTER_SCORECARD=excerpt ----------------------------------------------------------------------


def test_excerpt_mode_shows_first_sentences_and_links_to_the_full_scorecard(samples):
    item = samples[0]
    _, _, page, text = render([item], scorecard="excerpt")
    shown, flat = visible(page), " ".join(text.split())
    for review in item.reviews:
        excerpt = first_sentence(review.quote)
        assert excerpt != review.quote
        for part in (shown, flat):
            assert f"“{excerpt}”" in part
            assert review.quote not in part
    link = (
        f"{SITE}/compare/{item.slug}?utm_source=weekly-ai-tool-verdicts&utm_medium=email"
        f"&utm_campaign=2026-w48&utm_content={item.slug}-scorecard#scorecard"
    )
    assert f'href="{html.escape(link)}"' in page and "Read every quote in full on the site" in shown
    assert f"Every quote in full:\n{link}\n" in text


def test_full_mode_is_the_default_and_has_no_scorecard_link(samples):
    _, _, page, text = render(samples[:1])
    for review in samples[0].reviews:
        assert review.quote in visible(page) and review.quote in " ".join(text.split())
    assert "#scorecard" not in page and "#scorecard" not in text


def test_the_setting_is_read_from_the_environment_and_checked(monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SCORECARD", "excerpt")
    assert Settings(_env_file=None).scorecard == "excerpt"
    monkeypatch.setenv("NEWSLETTER_SCORECARD", "short")
    with pytest.raises(ValidationError, match="scorecard"):
        Settings(_env_file=None)


def test_every_button_keeps_its_padding_in_outlook_for_windows(samples):
    """Outlook for Windows ignores padding on a link: a button's cell carries the same padding in
    `mso-padding-alt`, which only Outlook reads, so the button stays a button there (caniemail)."""
    _, _, page, _ = render(samples[:3])
    notices = Notices(settings_with())
    pages = [page] + [
        notices.message(kind, subscriber_id=1, email="a@example.com").html for kind in NoticeKind
    ]
    for markup in pages:
        buttons = re.findall(
            r'<td bgcolor="#4338ca" style="([^"]*)"><a class="button" [^>]*style="([^"]*)"', markup
        )
        assert buttons, "every email here has a button"
        for cell, link in buttons:
            padding = re.search(r"(?:^|;)\s*padding:\s*([^;]+)", link)[1].strip()
            assert re.search(rf"(?:^|;)\s*mso-padding-alt:\s*{padding}\s*(?:;|$)", cell), (cell, link)
    assert len(re.findall(r'class="button"', page)) == 3, "one button per comparison"
