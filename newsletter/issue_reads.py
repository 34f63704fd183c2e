"""Reading an issue as readers get it, with SQLAlchemy Core alone: its comparisons with their reviews
and derived figures (panel and community ship %), its view (subject, preheader), its ledger counts.

One copy of these reads serves every caller. The ORM paths pass their Session (it runs Core
statements too, autoflush included); `newsletter issue show` passes a plain Connection, so that
command never loads the ORM, SQLModel or the table models, which were a third of its CPU and 12 MB
(issue 16, bench/startup.py). The tables are named here only by the columns these reads use;
tests/test_startup_imports.py checks every one against the models' tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, column, func, select, table

from newsletter.issue_words import default_preheader, default_subject
from newsletter.views import ComparisonView, IssueView, ReviewView, Share, masthead_from, tool_view
from newsletter.weeks import Week, issue_slug

if TYPE_CHECKING:
    from sqlalchemy import Row

    from newsletter.config import Settings

COMPARISON_FIELDS = (
    "id",
    "slug",
    "title",
    "dek",
    "category",
    "url",
    "left_tool_id",
    "right_tool_id",
    "pinned",
)
ISSUE = table("issue", *map(column, ("id", "week", "status", "subject_override", "preheader_override")))
ISSUE_ITEM = table("issueitem", column("issue_id"), column("comparison_id"), column("position"))
COMPARISON = table("comparison", *map(column, COMPARISON_FIELDS))
TOOL = table("tool", *map(column, ("id", "slug", "name", "vendor", "category", "tagline", "description")),
             column("entry_price"), column("url"))  # fmt: skip
REVIEWER = table("reviewer", column("id"), column("name"), column("lens"))
REVIEW = table(
    "review", *map(column, ("comparison_id", "tool_id", "reviewer_id", "position", "verdict", "quote"))
)
VOTE = table("vote", column("comparison_id"), column("tool_id"), column("verdict"))
DELIVERY = table("delivery", column("issue_id"), column("status"))
TABLES = (ISSUE, ISSUE_ITEM, COMPARISON, TOOL, REVIEWER, REVIEW, VOTE, DELIVERY)


class EditionError(RuntimeError):
    """An issue cannot do what was asked in its current state; the message says why."""


def rows(reader: Any, statement: Select) -> list[Row]:
    """`statement`'s rows through `reader`, a Connection or an ORM Session (which flushes what the
    caller added first, as for its own queries: its autoflush covers Core statements too)."""
    return list(reader.execute(statement))


def find_issue(reader: Any, week: Week) -> Row | None:
    """The week's issue (id, week, status and the editor's words), or None."""
    found = rows(reader, select(ISSUE).where(ISSUE.c.week == week.label))
    return found[0] if found else None


def missing_issue(week: Week) -> EditionError:
    return EditionError(f"there is no issue for {week}; run `newsletter issue compose --week {week}` first")


def issue_comparison_rows(reader: Any, issue_id: int) -> list[Row]:
    """The issue's comparisons in reading order (the columns of COMPARISON_FIELDS)."""
    query = (
        select(COMPARISON)
        .join(ISSUE_ITEM, ISSUE_ITEM.c.comparison_id == COMPARISON.c.id)
        .where(ISSUE_ITEM.c.issue_id == issue_id)
        .order_by(ISSUE_ITEM.c.position)
    )
    return rows(reader, query)


def issue_view(
    reader: Any, issue: Any, settings: Settings, comparisons: Sequence[Any] | None = None
) -> IssueView:
    """Everything the renderer needs for `issue` (or for a readers' variant of it, `comparisons`).

    The editor's subject and preheader apply to the issue as composed; a variant with other
    comparisons gets its own generated ones, since the editor's words may name what it lacks.
    """
    own = issue_comparison_rows(reader, issue.id)
    chosen = own if comparisons is None else comparisons
    views = tuple(comparison_views(reader, chosen, settings.site_url))
    if not views:
        raise EditionError(f"issue {issue.week} has no comparisons")
    edited = [c.id for c in chosen] == [c.id for c in own]
    return IssueView(
        week=issue.week,
        slug=issue_slug(issue.week),
        subject=(issue.subject_override if edited else None) or default_subject(views),
        preheader=(issue.preheader_override if edited else None) or default_preheader(views),
        comparisons=views,
        week_start=Week.parse(issue.week).monday,
        masthead=masthead_from(settings),
    )


def delivery_counts(reader: Any, issue_id: int) -> dict[str, int]:
    """How many of the issue's ledger rows are in each status."""
    query = (
        select(DELIVERY.c.status, func.count())
        .where(DELIVERY.c.issue_id == issue_id)
        .group_by(DELIVERY.c.status)
    )
    return {status: count for status, count in rows(reader, query)}


def panel_shares(reader: Any, comparison_ids: Sequence[int]) -> dict[tuple[int, int], Share]:
    """Panel ship share per (comparison, tool), from the review rows."""
    return _shares(reader, REVIEW, comparison_ids)


def community_shares(reader: Any, comparison_ids: Sequence[int]) -> dict[tuple[int, int], Share]:
    """Community ship share per (comparison, tool), from the vote rows."""
    return _shares(reader, VOTE, comparison_ids)


def _shares(reader: Any, source, comparison_ids: Sequence[int]) -> dict[tuple[int, int], Share]:
    counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    if not comparison_ids:
        return {}
    c = source.c
    query = (
        select(c.comparison_id, c.tool_id, c.verdict, func.count())
        .where(c.comparison_id.in_(comparison_ids))
        .group_by(c.comparison_id, c.tool_id, c.verdict)
    )
    for comparison_id, tool_id, verdict, count in rows(reader, query):
        entry = counts[(comparison_id, tool_id)]
        entry[1] += count
        if verdict == "ship":
            entry[0] += count
    return {key: Share(ship, total) for key, (ship, total) in counts.items()}


def comparison_views(reader: Any, comparisons: Sequence[Any], site_url: str) -> list[ComparisonView]:
    """Plain views of `comparisons` (stored Comparisons or rows of COMPARISON_FIELDS, in the given
    order) with reviews and derived figures, in four queries."""
    ids = [c.id for c in comparisons]
    if not ids:
        return []
    tool_ids = {c.left_tool_id for c in comparisons} | {c.right_tool_id for c in comparisons}
    tools = {t.id: t for t in rows(reader, select(TOOL).where(TOOL.c.id.in_(tool_ids)))}
    reviews: dict[tuple[int, int], list[ReviewView]] = defaultdict(list)
    query = (
        select(
            REVIEW.c.comparison_id,
            REVIEW.c.tool_id,
            REVIEW.c.verdict,
            REVIEW.c.quote,
            REVIEWER.c.name,
            REVIEWER.c.lens,
        )
        .join(REVIEWER, REVIEWER.c.id == REVIEW.c.reviewer_id)
        .where(REVIEW.c.comparison_id.in_(ids))
        .order_by(REVIEW.c.comparison_id, REVIEW.c.position)
    )
    for review in rows(reader, query):
        reviews[(review.comparison_id, review.tool_id)].append(
            ReviewView(reviewer=review.name, lens=review.lens, verdict=review.verdict, quote=review.quote)
        )
    panel = panel_shares(reader, ids)
    community = community_shares(reader, ids)
    empty = Share(0, 0)

    def view_of_tool(comparison, tool_id: int):
        tool = tools[tool_id]
        key = (comparison.id, tool_id)
        return tool_view(
            tool,
            slug=tool.slug,
            panel=panel.get(key, empty),
            community=community.get(key, empty),
            reviews=reviews[key],
        )

    return [
        ComparisonView(
            slug=c.slug,
            title=c.title,
            dek=c.dek,
            category=c.category,
            url=c.url or f"{site_url}/compare/{c.slug}",
            left=view_of_tool(c, c.left_tool_id),
            right=view_of_tool(c, c.right_tool_id),
            pinned=bool(c.pinned),
        )
        for c in comparisons
    ]
