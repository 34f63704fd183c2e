"""Picking the week's comparisons.

A week is an ISO week in the configured time zone: Monday 00:00 local up to the next Monday 00:00 local,
whatever daylight saving time does in between. The pick: comparisons published in that week that no
committed issue (approved, sending or sent) already carries; editor pins first, then the most split
panels, then the newest; at most `issue_size`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from newsletter.content import panel_shares
from newsletter.models import Comparison, Issue, IssueItem, IssueStatus
from newsletter.views import Share, panel_split
from newsletter.weeks import Week

COMMITTED = (IssueStatus.APPROVED, IssueStatus.SENDING, IssueStatus.SENT)


def pick(
    session: Session,
    week: Week,
    zone: ZoneInfo,
    size: int,
    *,
    for_issue_id: int | None = None,
    categories: frozenset[str] | None = None,
) -> list[Comparison]:
    """The week's comparisons in reading order; `for_issue_id` is the issue being refreshed, whose own
    items stay eligible; `categories` keeps only those (a reader's choice)."""
    start, end = week.bounds(zone)
    committed = (
        select(IssueItem.comparison_id)
        .join(Issue, col(Issue.id) == IssueItem.issue_id)
        .where(col(Issue.status).in_(COMMITTED))
    )
    if for_issue_id is not None:
        committed = committed.where(col(Issue.id) != for_issue_id)
    query = select(Comparison).where(
        col(Comparison.published_at) >= start,
        col(Comparison.published_at) < end,
        col(Comparison.id).not_in(committed),
    )
    if categories is not None:
        query = query.where(col(Comparison.category).in_(sorted(categories)))
    candidates = list(session.exec(query))
    shares = panel_shares(session, [c.id for c in candidates])
    empty = Share(0, 0)

    def split(comparison: Comparison) -> float:
        return panel_split(
            shares.get((comparison.id, comparison.left_tool_id), empty),
            shares.get((comparison.id, comparison.right_tool_id), empty),
        )

    candidates.sort(key=lambda c: (not c.pinned, -split(c), -c.published_at.timestamp(), c.slug))
    return candidates[:size]
