"""Rendering: plain data in, HTML and text out; no database needed. Then cheap personalisation."""

from __future__ import annotations

import html
import re
from datetime import date
from email.utils import formataddr

import pytest

import newsletter.mjml_html as mjml_html
from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.importing import ComparisonIn
from newsletter.issue_words import default_preheader, default_subject, week_label
from newsletter.personalise import IssueMailer
from newsletter.render import GMAIL_CLIP_BYTES, Renderer
from newsletter.rendered import RenderError
from newsletter.samples import comparison_view, issue_from
from newsletter.tokens import Signer
from newsletter.views import ComparisonView, IssueView

SITE = "https://verdicts.example.com"


def view_of(item: ComparisonIn) -> ComparisonView:
    return comparison_view(item, SITE)


def issue_of(items, settings: Settings, **overrides) -> IssueView:
    """An issue of `items` for 2026-W48 (Monday 23 November 2026)."""
    return issue_from(items, settings, week=Week(2026, 48), **overrides)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture
def seed_issue(samples, settings):
    return issue_of(samples[:1], settings)


def visible(markup: str) -> str:
    """The HTML's text as a reader sees it: tags dropped, entities decoded, whitespace collapsed."""
    text = re.sub(r"<(style|title)[^>]*>.*?</\1>", " ", markup, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_seed_names_figures_and_every_quote_appear_in_html_and_text(renderer, seed_issue, samples):
    rendered = renderer.render_issue(seed_issue)
    page, text = rendered.personalise(token="tok", email="ada@example.com")
    page_text, text_flat = visible(page), " ".join(text.split())
    for part in (page_text, text_flat):
        assert "Claude Haiku Open Weights" in part and "Gemini 2.5 Flash Lite" in part
        assert "Developer Tools" in part
        assert "50%" in part and "100%" in part
        assert "2 of 4 reviewers" in part and "4 of 4 reviewers" in part
        assert "Free" in part
        for review in samples[0].reviews:
            assert review.quote in part
    assert "Weekly AI Tool Verdicts" in page_text and "23–29 November 2026" in page_text


def test_a_quote_holding_a_script_tag_is_escaped(renderer, samples, settings):
    item = samples[0]
    reviews = [
        item.reviews[0].model_copy(update={"quote": 'Nice <script>alert("x")</script> & more'}),
        *item.reviews[1:],
    ]
    rendered = renderer.render_issue(issue_of([item.model_copy(update={"reviews": reviews})], settings))
    page, text = rendered.personalise(token="tok", email="ada@example.com")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;" in page
    assert 'Nice <script>alert("x")</script> & more' in visible(page)
    assert '<script>alert("x")</script>' in text  # plain text is not HTML: it shows what was written


def test_html_is_well_under_gmails_clipping_limit_with_the_heaviest_comparisons(renderer, samples, settings):
    heaviest = sorted(samples, key=lambda item: -sum(len(r.quote) for r in item.reviews))[:3]
    rendered = renderer.render_issue(issue_of(heaviest, settings))
    page, _ = rendered.personalise(token="t" * 40, email="someone.with.a.long.name@example.com")
    assert len(page.encode()) < GMAIL_CLIP_BYTES
    assert len(page.encode()) < 90_000, "keep headroom below the limit for longer quotes"


def test_too_many_comparisons_refuse_to_render_rather_than_be_clipped(renderer, samples, settings):
    many = [item.model_copy(update={"slug": f"{item.slug}-{n}"}) for n in range(3) for item in samples]
    with pytest.raises(RenderError, match="Gmail clips"):
        renderer.render_issue(issue_of(many, settings))


def test_email_craft_lang_color_scheme_preheader_doctype_alt_and_https_links(renderer, seed_issue):
    page, _ = renderer.render_issue(seed_issue).personalise(token="tok", email="ada@example.com")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert re.search(r'<html[^>]+lang="en"', page)
    assert '<meta name="color-scheme" content="light dark"' in page
    assert '<meta name="supported-color-schemes" content="light dark"' in page
    assert seed_issue.preheader in html.unescape(page)
    assert "prefers-color-scheme: dark" in page
    for image in re.findall(r"<img\b[^>]*>", page):
        assert re.search(r'\balt="[^"]+"', image), image
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("https://") for h in hrefs), [
        h for h in hrefs if not h.startswith("https://")
    ]
    assert "<link" not in page and "@import" not in page and "<script" not in page


def test_two_columns_on_desktop_stack_on_a_phone_because_important_survives(renderer, seed_issue):
    page, _ = renderer.render_issue(seed_issue).personalise(token="tok", email="ada@example.com")
    # the tool cards and each lens's two quotes: five pairs of cards, stacked unless the screen is wide
    assert page.count('class="duo"') == 5 and page.count('class="half card"') == 10
    desktop_rules = re.findall(r"@media only screen and \(min-width:520px\)\s*\{(.*?)\}\s*\}", page, re.S)
    assert any(".half { display: table-cell !important" in rule for rule in desktop_rules), (
        "the pairs go side by side in a min-width media query, and !important survived premailer"
    )


def test_comparison_button_is_absolute_https_with_utm_tags(renderer, seed_issue):
    page, text = renderer.render_issue(seed_issue).personalise(token="tok", email="ada@example.com")
    expected = (
        f"{SITE}/compare/claude-haiku-open-weights-vs-gemini-2-5-flash-lite?utm_source=weekly-ai-tool-verdicts"
        "&utm_medium=email&utm_campaign=2026-w48&utm_content=claude-haiku-open-weights-vs-gemini-2-5-flash-lite"
    )
    assert html.escape(expected) in page
    assert expected in text


def test_personal_links_and_address_are_filled_per_reader_and_escaped(renderer, seed_issue):
    rendered = renderer.render_issue(seed_issue)
    page, text = rendered.personalise(token="abc.def.ghi", email="o'brien&co@example.com")
    assert f'href="{SITE}/unsubscribe/abc.def.ghi"' in page
    assert f'href="{SITE}/preferences/abc.def.ghi"' in page
    assert (
        f"{SITE}/vote/abc.def.ghi/claude-haiku-open-weights-vs-gemini-2-5-flash-lite/gemini-2-5-flash-lite/ship"
        in page
    )
    assert "o&#x27;brien&amp;co@example.com" in page
    assert "o'brien&co@example.com" in text
    assert f"Unsubscribe: {SITE}/unsubscribe/abc.def.ghi" in text
    assert "%%" not in page and "%%" not in text


def test_content_cannot_forge_a_reader_field_marker(renderer, samples, settings, seed_issue):
    item = samples[0]
    forged = "%%000000000000.token%% and %%{nonce}.email%%"
    reviews = [item.reviews[0].model_copy(update={"quote": forged}), *item.reviews[1:]]
    rendered = renderer.render_issue(issue_of([item.model_copy(update={"reviews": reviews})], settings))
    page, text = rendered.personalise(token="SECRET-TOKEN", email="ada@example.com")
    plain_page, plain_text = renderer.render_issue(seed_issue).personalise(
        token="SECRET-TOKEN", email="ada@example.com"
    )
    assert forged in text
    assert text.count("SECRET-TOKEN") == plain_text.count("SECRET-TOKEN")
    assert page.count("SECRET-TOKEN") == plain_page.count("SECRET-TOKEN")


def test_provider_side_substitution_writes_each_field_in_the_providers_syntax(renderer, seed_issue):
    rendered = renderer.render_issue(seed_issue)
    body = rendered.html.with_placeholders(lambda name: f"%recipient.{name}%")
    assert f"{SITE}/unsubscribe/%recipient.token%" in body
    assert "%recipient.email%" in body
    assert rendered.html.fields == {"token", "email"}


def test_plain_text_part_reads_on_its_own(renderer, seed_issue):
    _, text = renderer.render_issue(seed_issue).personalise(token="tok", email="ada@example.com")
    assert text.startswith("WEEKLY AI TOOL VERDICTS\nWeek 48 · 23–29 November 2026\n")
    assert "[SHIP] Claude Haiku Open Weights" in text and "[SKIP] Claude Haiku Open Weights" in text
    assert "Panel ship:  50% (2 of 4 reviewers)" in text
    assert "Community:   No votes yet" in text and "Community:   —" not in text
    assert settings_postal_line() in text
    assert max(len(line) for line in text.splitlines() if "https://" not in line) <= 76
    assert "&#" not in text and "&amp;" not in text


def settings_postal_line() -> str:
    return Settings(_env_file=None).postal_address


def test_mjml_is_compiled_once_per_issue_not_once_per_reader(renderer, seed_issue, settings, monkeypatch):
    calls = []
    original = mjml_html.mjml2html
    monkeypatch.setattr(mjml_html, "mjml2html", lambda *a, **k: calls.append(1) or original(*a, **k))
    mailer = IssueMailer(
        renderer.render_issue(seed_issue), settings, tag="2026-w48", expires_at=2_000_000_000
    )
    messages = [mailer.message(delivery_id=n, subscriber_id=n, email=f"r{n}@example.com") for n in range(500)]
    assert len(calls) == 1
    assert len({m.html for m in messages}) == 500, "every reader gets their own links"


def test_each_reader_gets_a_token_that_verifies_for_them_only(renderer, seed_issue, settings):
    mailer = IssueMailer(
        renderer.render_issue(seed_issue), settings, tag="2026-w48", expires_at=2_000_000_000
    )
    message = mailer.message(delivery_id=7, subscriber_id=42, email="ada@example.com")
    token = message.unsubscribe_url.rsplit("/", 1)[1]
    assert Signer(settings.signing_key()).verify(token, "reader", now=1_900_000_000).subject == 42
    assert f"/preferences/{token}" in message.html
    assert message.list_id == formataddr((settings.name, "weekly.verdicts.example.com"))


def test_subject_and_preheader_come_from_the_picks(samples, settings):
    views = tuple(view_of(item) for item in samples[:3])
    assert (
        default_subject(views[:1])
        == "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite: the panel's verdict"
    )
    assert (
        default_subject(views) == "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite, plus 2 more verdicts"
    )
    preheader = default_preheader(views)
    assert preheader.startswith("Panel: Claude Haiku Open Weights 50% ship, Gemini 2.5 Flash Lite 100% ship.")
    assert "Cursor vs Windsurf" in preheader
    assert len(preheader) <= 200


@pytest.mark.parametrize(
    ("monday", "label"),
    [
        (date(2026, 11, 23), "23–29 November 2026"),
        (date(2026, 11, 30), "30 November – 6 December 2026"),
        (date(2026, 12, 28), "28 December 2026 – 3 January 2027"),
    ],
)
def test_week_label(monday, label):
    assert week_label(monday) == label
