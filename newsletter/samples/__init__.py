"""Sample content shipped inside the package: the seed comparison page and more written for demos.

Loading re-dates every sample into the current ISO week (configured time zone), between Monday 00:00
and now, so a fresh store always has a week to compose.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

from sqlmodel import Session

from newsletter import links
from newsletter.config import Settings
from newsletter.content import ImportSummary, store_comparisons
from newsletter.curation import Week
from newsletter.importing import ComparisonIn, TallyIn, ToolIn, parse_text
from newsletter.issue_words import default_preheader, default_subject
from newsletter.render import masthead_from
from newsletter.views import ComparisonView, IssueView, ReviewView, Share, ToolView, tool_view

SAMPLE_FILE = "comparisons.yaml"


def sample_text() -> str:
    return resources.files(__package__).joinpath(SAMPLE_FILE).read_text(encoding="utf-8")


def sample_comparisons() -> list[ComparisonIn]:
    return parse_text(sample_text(), name=f"newsletter/samples/{SAMPLE_FILE}", is_yaml=True)


def dated_into_week(items: list[ComparisonIn], now: datetime, zone: ZoneInfo) -> list[ComparisonIn]:
    """Spread the samples over [Monday 00:00, now] of now's week, newest first, keeping their order."""
    start, _ = Week.containing(now, zone).bounds(zone)
    span = now - start
    count = len(items)
    return [
        item.model_copy(update={"published_at": now - span * index / count})
        for index, item in enumerate(items)
    ]


def load_samples(session: Session, zone: ZoneInfo, now: datetime) -> ImportSummary:
    return store_comparisons(session, dated_into_week(sample_comparisons(), now, zone), zone)


# --- views straight from the files, without a store (the preview's sample issue, tests, benches) ---


def comparison_view(item: ComparisonIn, site_url: str) -> ComparisonView:
    """What the renderer would get for `item` once imported, with its figures, but with no store."""

    def tool(data: ToolIn, side: str, votes: TallyIn) -> ToolView:
        reviews = [r for r in item.reviews if r.tool == side]
        return tool_view(
            data,
            slug=data.key,
            panel=Share(sum(1 for r in reviews if r.verdict == "ship"), len(reviews)),
            community=Share(votes.ship, votes.ship + votes.skip),
            reviews=(ReviewView(r.reviewer, r.lens, r.verdict, r.quote) for r in reviews),
        )

    return ComparisonView(
        slug=item.slug,
        title=item.display_title,
        dek=item.dek,
        category=item.category or item.tools.left.category,
        url=item.url or links.comparison_page_url(site_url, item.slug),
        left=tool(item.tools.left, "left", item.community.left),
        right=tool(item.tools.right, "right", item.community.right),
    )


def issue_from(
    items: list[ComparisonIn], settings: Settings, *, week: Week, slug: str | None = None, **overrides
) -> IssueView:
    """An issue of `items` as it would be composed for `week`, with generated subject and preheader."""
    comparisons = tuple(comparison_view(item, settings.site_url) for item in items)
    fields = {
        "week": week.label,
        "slug": slug or week.label.lower(),
        "subject": default_subject(comparisons),
        "preheader": default_preheader(comparisons),
        "comparisons": comparisons,
        "week_start": week.monday,
        "masthead": masthead_from(settings),
    } | overrides
    return IssueView(**fields)


def sample_issue(settings: Settings, now: datetime, count: int | None = None) -> IssueView:
    """The packaged samples as this week's issue (at most `count`, default the issue size): what the
    preview shows on an empty store, so a template can be worked on before any content exists."""
    items = sample_comparisons()[: count or settings.issue_size]
    return issue_from(items, settings, week=Week.containing(now, settings.zone), slug="sample")
