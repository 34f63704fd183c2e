"""How the list moves week by week: its size at each week's end (from the event trail), signups,
confirmations and leaves by reason, and each week's issue with its recipients and human clickers.

`weekly_stats` is `newsletter stats`; `list_movements` is the list's side alone, which the console's
readers page charts (`audience.list_growth`). Like the issue report (newsletter/reports.py), every
figure is a query over the rows, never a counter kept on the side; the list at past moments is
kept once counted, exactly (newsletter/list_history.py), so a week's figures cost a week's events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from newsletter.curation import Week
from newsletter.list_history import AGAIN, JOINS, SIGNUP_REQUESTED, list_points
from newsletter.models import Issue
from newsletter.reports import LEAVES, human_readers, recipients, tracked

__all__ = [
    "JOINS",
    "WeekFigures",
    "last_weeks",
    "list_movements",
    "list_size_at",
    "list_sizes_at",
    "weekly_stats",
]


@dataclass
class WeekFigures:
    week: str
    list_size: int  # active readers at the week's end, from the event trail
    signups: int
    confirmations: int
    leaves: dict[str, int] = field(default_factory=dict)
    issue: str | None = None
    recipients: int = 0
    human_readers: int = 0
    tracked: bool = False  # the issue carried tracked links (sent with NEWSLETTER_TRACKING on)

    @property
    def human_click_rate(self) -> float | None:
        """None when there is nothing to divide, or nothing was measured: an issue sent with tracking
        off has no clicks to count, which is not a rate of 0."""
        if not (self.tracked and self.recipients):
            return None
        return round(self.human_readers / self.recipients, 4)

    def as_json(self) -> dict:
        return asdict(self) | {"human_click_rate": self.human_click_rate}

    def csv_row(self) -> dict[str, object]:
        row = {
            "week": self.week,
            "list_size": self.list_size,
            "signups": self.signups,
            "confirmations": self.confirmations,
        }
        row |= {f"left_{reason}": self.leaves.get(reason, 0) for reason in LEAVES}
        rate = self.human_click_rate
        return row | {
            "issue": self.issue or "",
            "recipients": self.recipients,
            "human_readers": self.human_readers,
            "tracked": self.tracked if self.issue else "",
            "human_click_rate": "" if rate is None else rate,
        }


def last_weeks(weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None) -> list[Week]:
    """The last `weeks` ISO weeks in `zone`, this one included, oldest first."""
    current = Week.containing(now or datetime.now(UTC), zone)
    mondays = [current.monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    return [Week(*monday.isocalendar()[:2]) for monday in mondays]


def list_movements(
    session: Session, weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None
) -> list[WeekFigures]:
    """How the list moved in each of the last `weeks` weeks, oldest first: its size at the week's
    end, signups, confirmations and leaves by reason (the issue columns left empty): the difference
    between the list at the week's start and at its end (newsletter/list_history.py), where the
    weeks already past are kept."""
    chosen = last_weeks(weeks, zone, now)
    bounds = [week.bounds(zone) for week in chosen]
    points = list_points(session, [bounds[0][0], *(end for _, end in bounds)])
    rows = []
    for n, week in enumerate(chosen):
        moved = points[n + 1].counts - points[n].counts
        rows.append(
            WeekFigures(
                week=week.label,
                list_size=points[n + 1].size,
                signups=moved[SIGNUP_REQUESTED] - moved[AGAIN],
                confirmations=moved["confirmed"],
                leaves={reason: moved[reason] for reason in LEAVES},
            )
        )
    return rows


def weekly_stats(
    session: Session, weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None
) -> list[WeekFigures]:
    """The last `weeks` ISO weeks (this one included), oldest first: the list's movements and each
    week's issue with its recipients and human clickers."""
    figures = list_movements(session, weeks, zone, now)
    labels = [row.week for row in figures]
    issues = dict(session.execute(select(Issue.week, Issue.id).where(Issue.week.in_(labels))).all())
    for row in figures:
        if row.week in issues:
            row.issue, row.recipients = row.week, recipients(session, issues[row.week])
            row.human_readers = human_readers(session, issues[row.week], opens=False)
            row.tracked = tracked(session, issues[row.week])
    return figures


def list_size_at(session: Session, moment: datetime) -> int:
    """Readers whose latest change of state before `moment` made them active (a confirmation or an
    owner's add). Erased readers keep no history, so they drop out of the past too. A reader an import
    suppressed (another platform's export says they left) leaves the list at that import."""
    return list_sizes_at(session, [moment])[0]


def list_sizes_at(session: Session, moments: list[datetime]) -> list[int]:
    """`list_size_at` for each of `moments` (ascending)."""
    return [point.size for point in list_points(session, moments)]
