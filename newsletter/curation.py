"""Picking the week's comparisons.

A week is an ISO week in the configured time zone: Monday 00:00 local up to the next Monday 00:00 local,
whatever daylight saving time does in between. The pick: comparisons published in that week that no
committed issue (approved, sending or sent) already carries; editor pins first, then the most split
panels, then the newest; at most `issue_size`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from newsletter.content import panel_shares
from newsletter.models import Comparison, Issue, IssueItem, IssueStatus
from newsletter.views import Share, panel_split

_WEEK = re.compile(r"^(\d{4})-?W(\d{2})$", re.IGNORECASE)
COMMITTED = (IssueStatus.APPROVED, IssueStatus.SENDING, IssueStatus.SENT)


@dataclass(frozen=True, order=True)
class Week:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        """`2026-W48` (or `2026W48`, any case) -> Week; a week that does not exist is refused."""
        match = _WEEK.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not an ISO week; write it like 2026-W48")
        year, number = int(match[1]), int(match[2])
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError as exc:
            raise ValueError(f"{year} has no ISO week {number}") from exc
        return cls(year, number)

    @classmethod
    def containing(cls, moment: datetime, zone: ZoneInfo) -> Week:
        year, number, _ = moment.astimezone(zone).isocalendar()
        return cls(year, number)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) of the week in UTC, from local midnights (so 167 or 169 hours across DST)."""
        start = datetime.combine(self.monday, time(0), tzinfo=zone)
        end = datetime.combine(self.monday + timedelta(days=7), time(0), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def __str__(self) -> str:
        return self.label


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
