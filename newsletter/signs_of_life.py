"""Who stopped reading: what counts as a sign of life, and which readers showed none over the last
N sent issues (the sunset job asks them whether they still want it; see `newsletter.sunset`).

A sign of life is a human click (a hit on a tracked link judged human; the open pixel never counts,
neither for nor against: opens are never used), a vote, or something the reader did in the store:
confirming, typing their address into the signup form, a preferences change (pause, resume,
categories, tracking) or the stay button (`stayed`, which also closes their question). Each of these
starts the count of N issues again.

Never asked: readers who turned click tracking off (their clicks are not stored, so their silence
says nothing; they are kept, as if they clicked), paused readers, and nobody at all while
NEWSLETTER_TRACKING=off (clicks are not stored), when an issue of the span carried no tracked links
(it was sent with tracking off), or when the span reaches back past NEWSLETTER_HIT_RETENTION_DAYS
(hits that old are folded into counts that name no reader).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlmodel import Session, col

from newsletter.config import Settings
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueLink,
    IssueStatus,
    LinkHit,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    SunsetAsk,
    Vote,
)
from newsletter.tracking.links import LinkKind

SIGNS_OF_LIFE = ("confirmed", "signup_requested", "paused", "resumed", "categories", "tracking", "stayed")
NOT_CLICKS = (LinkKind.OPEN, LinkKind.DECOY)  # a span issue with only these carried no tracked link


def lively_since_asked(ask_ids: list[int]):
    """Ids of the questions whose reader showed a sign of life since it was asked."""
    since = func.coalesce(SunsetAsk.sent_at, SunsetAsk.asked_at)
    return select(SunsetAsk.id).where(
        col(SunsetAsk.id).in_(ask_ids), or_(*signs(SunsetAsk.subscriber_id, since))
    )


def last_span(session: Session, issues: int) -> list[Issue]:
    """The last `issues` sent issues, newest first."""
    return list(
        session.scalars(
            select(Issue)
            .where(Issue.status == IssueStatus.SENT, col(Issue.sent_at).is_not(None))
            .order_by(col(Issue.sent_at).desc(), col(Issue.id).desc())
            .limit(issues)
        )
    )


def span_start(span: list[Issue]) -> datetime:
    """When the first issue of the span started going out: signs of life count from then."""
    return min(issue.send_started_at or issue.sent_at for issue in span)


def span_problem(session: Session, span: list[Issue], settings: Settings, now: datetime) -> str | None:
    """Why this span cannot tell who stopped reading (None: it can)."""
    wanted = settings.sunset_issues
    if len(span) < wanted:
        return f"{len(span)} issue(s) sent so far, fewer than NEWSLETTER_SUNSET_ISSUES={wanted}"
    tracked = set(
        session.scalars(
            select(IssueLink.issue_id)
            .where(col(IssueLink.issue_id).in_([i.id for i in span]), col(IssueLink.kind).not_in(NOT_CLICKS))
            .distinct()
        )
    )
    untracked = [issue.week for issue in span if issue.id not in tracked]
    if untracked:
        return (
            f"issue(s) {', '.join(sorted(untracked))} carried no tracked links, so their clicks are unknown"
        )
    if span_start(span) < now - timedelta(days=settings.hit_retention_days):
        return (
            f"the last {wanted} issues reach back past NEWSLETTER_HIT_RETENTION_DAYS="
            f"{settings.hit_retention_days}; clicks that old are folded and name no reader"
        )
    return None


def silent_readers(span: list[Issue], now: datetime):
    """Active readers, tracking on, not paused, sent every issue of the span, with no sign of life
    since it began and no question open or settled within it."""
    since = span_start(span)
    reader = Subscriber.id
    received = (
        select(Delivery.subscriber_id)
        .where(col(Delivery.issue_id).in_([i.id for i in span]), Delivery.status == DeliveryStatus.SENT)
        .group_by(Delivery.subscriber_id)
        .having(func.count() == len(span))
    )
    asked = (
        select(SunsetAsk.id)
        .where(
            SunsetAsk.subscriber_id == reader,
            or_(
                col(SunsetAsk.outcome).is_(None),
                func.coalesce(SunsetAsk.resolved_at, SunsetAsk.asked_at) >= since,
            ),
        )
        .exists()
    )
    return (
        select(Subscriber.id)
        .where(
            Subscriber.status == SubscriberStatus.ACTIVE,
            col(Subscriber.tracking).is_(True),
            or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= now),
            col(Subscriber.id).in_(received),
            *[~sign for sign in signs(reader, since)],
            ~asked,
        )
        .order_by(Subscriber.id)
    )


def _clicked(reader, since):
    """A human click by the reader since `since`, on any tracked link but the open pixel."""
    return (
        select(LinkHit.id)
        .join(IssueLink, col(IssueLink.id) == LinkHit.link_id)
        .where(
            LinkHit.subscriber_id == reader,
            col(LinkHit.machine).is_(False),
            LinkHit.at >= since,
            IssueLink.kind != LinkKind.OPEN,
        )
        .exists()
    )


def _voted(reader, since):
    return select(Vote.id).where(Vote.subscriber_id == reader, Vote.updated_at >= since).exists()


def _did_something(reader, since):
    return (
        select(SubscriberEvent.id)
        .where(
            SubscriberEvent.subscriber_id == reader,
            SubscriberEvent.at >= since,
            col(SubscriberEvent.kind).in_(SIGNS_OF_LIFE),
        )
        .exists()
    )


def signs(reader, since) -> tuple:
    """The reader's signs of life since `since`, each an EXISTS: a click, a vote, a store event."""
    return _clicked(reader, since), _voted(reader, since), _did_something(reader, since)
