"""Derived figures: panel ship % from reviews, community % from votes, never typed in."""

from __future__ import annotations

import pytest
from sqlmodel import select

from newsletter.content import comparison_views, store_comparisons
from newsletter.models import Comparison, Tool, Vote
from newsletter.views import NO_VOTES, Share
from tests.conftest import FIXTURES


def stored_views(session, items, settings):
    store_comparisons(session, items, settings.zone)
    session.commit()
    comparisons = list(session.exec(select(Comparison).order_by(Comparison.id)))
    return comparison_views(session, comparisons, settings.site_url)


def test_seed_panel_figures_are_derived_as_the_page_shows(session, settings, samples):
    (seed,) = stored_views(session, samples[:1], settings)
    assert seed.left.name == "Claude Haiku Open Weights"
    assert (seed.left.panel.ship, seed.left.panel.total, seed.left.panel.label) == (2, 4, "50%")
    assert (seed.right.panel.ship, seed.right.panel.total, seed.right.panel.label) == (4, 4, "100%")
    assert seed.left.community.label == NO_VOTES == seed.right.community.label


def test_panel_figure_follows_the_verdicts_not_a_stored_number(session, settings, samples):
    seed = samples[0]
    reviews = [r.model_copy(update={"verdict": "skip"}) if r.tool == "right" else r for r in seed.reviews]
    (view,) = stored_views(session, [seed.model_copy(update={"reviews": reviews})], settings)
    assert view.right.panel.label == "0%"


def test_community_figure_counts_vote_rows_and_a_reader_vote_moves_it(session, settings, samples):
    cursor = next(item for item in samples if item.slug == "cursor-vs-windsurf")
    (view,) = stored_views(session, [cursor], settings)
    assert (view.left.community.ship, view.left.community.total, view.left.community.label) == (41, 50, "82%")

    comparison = session.exec(select(Comparison)).one()
    tool = session.exec(select(Tool).where(Tool.slug == "cursor")).one()
    session.add(Vote(comparison_id=comparison.id, tool_id=tool.id, voter="reader:1", verdict="skip"))
    session.commit()
    (view,) = comparison_views(session, [comparison], settings.site_url)
    assert (view.left.community.ship, view.left.community.total) == (41, 51)
    assert view.left.community.label == "80%"


@pytest.mark.parametrize(
    ("ship", "total", "label"),
    [
        (0, 0, NO_VOTES),
        (1, 8, "13%"),
        (1, 3, "33%"),
        (2, 3, "67%"),
        (1, 200, "1%"),
        (199, 200, "100%"),
        (3, 3, "100%"),
    ],
)
def test_share_rounds_half_up_and_shows_a_dash_without_votes(ship, total, label):
    assert Share(ship, total).label == label


def test_share_refuses_impossible_counts():
    with pytest.raises(ValueError, match="outside"):
        Share(5, 4)


@pytest.mark.parametrize(
    ("ship", "total", "split"), [(2, 4, 1.0), (4, 4, 0.0), (0, 4, 0.0), (3, 4, 0.5), (0, 0, 0.0)]
)
def test_split_is_one_for_an_even_panel_and_zero_for_a_unanimous_one(ship, total, split):
    assert Share(ship, total).split == split


def test_sample_seed_keeps_every_quote_of_the_page_verbatim(samples):
    page = (FIXTURES / "comparison-page.txt").read_text(encoding="utf-8").splitlines()
    quotes_on_page = [line for line in page if line.startswith("“")]
    seed = samples[0]
    assert len(quotes_on_page) == 8
    assert [f"“{review.quote}”" for review in seed.reviews] == quotes_on_page
    assert seed.display_title in page
    assert seed.tools.left.description in page
    assert seed.tools.right.tagline in page


def test_samples_hold_enough_realistic_content_for_several_weeks_picks(samples):
    assert len(samples) >= 6
    assert len({item.category or item.tools.left.category for item in samples}) >= 4
    assert sum(1 for item in samples if item.community.left.ship + item.community.right.ship) >= 3
    for item in samples:
        assert len(item.reviews) == 8, item.slug
