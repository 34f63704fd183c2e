"""The week at a glance, as plain data for the console's home page: this week's issue (or the pick it
would get), its comparisons with their figures, its checks, when the scheduler composes and sends
it, the send's ledger, what editors did to it, and the last issue's headline figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, exists, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter import editor_log, scheduling
from newsletter.config import Settings
from newsletter.content import comparison_views
from newsletter.curation import Week, pick
from newsletter.editions import addable, issue_comparisons
from newsletter.ledger import not_paused
from newsletter.models import (
    Comparison,
    Delivery,
    DeliveryStatus,
    EditorEvent,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.reports import IssueHeadline, issue_headline
from newsletter.send_progress import Progress, send_progress
from newsletter.views import ComparisonView

EDITABLE = (IssueStatus.DRAFT, IssueStatus.APPROVED)
SENDABLE = (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SENDING)


@dataclass
class PickRow:
    """A comparison in (or eligible for) the week's issue, with the figures an editor decides on."""

    id: int
    view: ComparisonView
    published_at: datetime


@dataclass
class WeekOverview:
    week: Week
    issue: Issue | None
    picks: list[PickRow]
    addable: list[PickRow] = field(default_factory=list)
    schedule: dict[str, str] = field(default_factory=dict)  # job -> next run, local time
    progress: Progress | None = None
    history: list[EditorEvent] = field(default_factory=list)
    last: IssueHeadline | None = None
    readers: int = 0  # whom a send would go to now (active, not paused, not sent yet)

    @property
    def status(self) -> str:
        return self.issue.status if self.issue else "not composed yet"

    @property
    def key(self) -> str:
        return self.week.label

    @property
    def editable(self) -> bool:
        return self.issue is not None and self.issue.status in EDITABLE

    @property
    def draft(self) -> bool:
        return self.issue is not None and self.issue.status == IssueStatus.DRAFT

    @property
    def sendable(self) -> bool:
        return self.issue is not None and self.issue.status in SENDABLE


def rows(session: Session, comparisons: list[Comparison], settings: Settings) -> list[PickRow]:
    views = comparison_views(session, comparisons, settings.site_url)
    return [PickRow(c.id, view, c.published_at) for c, view in zip(comparisons, views, strict=True)]


def readers_owed(session: Session, issue_id: int | None) -> int:
    """Readers a send of the issue would still write to: those with a queued or in-flight row, plus
    active, unpaused readers without one (what the send's ledger would add)."""
    now = utcnow()
    fresh = (
        select(func.count())
        .select_from(Subscriber)
        .where(Subscriber.status == SubscriberStatus.ACTIVE, not_paused(now))
    )
    if issue_id is None:
        return session.exec(fresh).one()
    has_row = exists().where(and_(Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id))
    owed = select(func.count()).where(
        Delivery.issue_id == issue_id,
        col(Delivery.status).in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
    )
    return session.exec(fresh.where(~has_row)).one() + session.exec(owed).one()


def last_issue(session: Session, before: str) -> IssueHeadline | None:
    """The headline figures of the latest sent (or sending) issue before week `before`."""
    issue_id = session.exec(
        select(Issue.id)
        .where(Issue.week < before, col(Issue.status).in_([IssueStatus.SENT, IssueStatus.SENDING]))
        .order_by(col(Issue.week).desc())
        .limit(1)
    ).first()
    return issue_headline(session, issue_id) if issue_id is not None else None


def schedule(settings: Settings, engine: Engine) -> dict[str, str]:
    """The compose and send jobs' next runs, from the scheduler's persisted jobs."""
    return {
        job: when for job, _expr, when in scheduling.planned(settings, engine) if job in ("compose", "send")
    }


def overview(session: Session, settings: Settings, week: Week, planned: dict[str, str]) -> WeekOverview:
    """The week's figures; `planned` is `schedule(...)`, read before the session (on SQLite a second
    connection inside a session would wait for the session's own write lock)."""
    issue = session.exec(select(Issue).where(Issue.week == week.label)).first()
    if issue is None:
        picks = rows(session, pick(session, week, settings.zone, settings.issue_size), settings)
    else:
        picks = rows(session, issue_comparisons(session, issue), settings)
    found = WeekOverview(week=week, issue=issue, picks=picks, schedule=planned)
    if issue is not None:
        if issue.status == IssueStatus.DRAFT:
            found.addable = rows(session, addable(session, issue, settings), settings)
        if issue.status in (IssueStatus.SENDING, IssueStatus.SENT, IssueStatus.CANCELLED):
            found.progress = send_progress(session, issue.id)
        found.history = editor_log.issue_history(session, issue.id, limit=10)
    if found.status in (*SENDABLE, "not composed yet"):
        found.readers = readers_owed(session, issue.id if issue else None)
    found.last = last_issue(session, week.label)
    return found
