"""The readers as the editors' console sees them: one reader found by address, and the list's growth
week by week.

`find_reader` answers a search by address with everything the store holds on that reader, bounded
(the newest `limit` events, deliveries and clicks, with the totals): their state, where they came
from, their choices, and what they did. An address whose owner erased it is found only through its
keyed hash (`ErasedAddress`): the answer says when it was erased and holds nothing else.

`list_growth` is `weekly.list_movements` (the same figures `newsletter stats` prints) shaped for a
chart: one row per ISO week, oldest first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session

from newsletter.curation import Week
from newsletter.erasure import erased_row
from newsletter.headers import normalise_email
from newsletter.models import (
    Delivery,
    Issue,
    IssueLink,
    LinkHit,
    ProviderEvent,
    SubscriberEvent,
)
from newsletter.reports import LEAVES
from newsletter.subscriptions import chosen_categories, find_by_email
from newsletter.weekly import list_movements

LIMIT = 200  # rows of each kind a reader's record shows, newest first


@dataclass(frozen=True)
class ReaderEvent:
    kind: str
    source: str
    at: datetime
    detail: str | None
    issue: str | None  # the week of the issue whose link it came from


@dataclass(frozen=True)
class ReaderDelivery:
    issue: str  # its week
    status: str
    sent_at: datetime | None
    error: str | None
    provider: str | None
    outcomes: tuple[str, ...]  # what the provider reported: delivered, bounced, complained, opened ...


@dataclass(frozen=True)
class ReaderClick:
    issue: str
    url: str
    label: str
    kind: str  # comparison, tool, vote ... or open (the pixel)
    at: datetime
    method: str
    machine: bool
    reason: str  # the rule that judged it a machine ("" for a human)


@dataclass(frozen=True)
class ReaderRecord:
    """A reader found by address. `erased_at` set and `subscriber_id` None: the address was erased
    and nothing else is known; `erased_at` set with a row: erased once, then signed up again."""

    email: str
    subscriber_id: int | None
    status: str
    source: str | None = None
    created_at: datetime | None = None
    requested_at: datetime | None = None
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    paused_until: datetime | None = None
    paused: bool = False
    tracking: bool | None = None
    categories: tuple[str, ...] | None = None  # None: every category
    erased_at: datetime | None = None
    events: list[ReaderEvent] = field(default_factory=list)
    events_total: int = 0
    deliveries: list[ReaderDelivery] = field(default_factory=list)
    deliveries_total: int = 0
    clicks: list[ReaderClick] = field(default_factory=list)
    clicks_total: int = 0

    @property
    def erased(self) -> bool:
        return self.subscriber_id is None and self.erased_at is not None

    def as_json(self) -> dict:
        return asdict(self) | {"erased": self.erased}


def find_reader(
    session: Session, email: str, key: bytes, *, limit: int = LIMIT, now: datetime | None = None
) -> ReaderRecord | None:
    """The reader with this address (normalised as everywhere: case, Unicode, punycode), or the
    fact that it was erased, or None. Raises HeaderValueError for something that is not an address.
    `key` is the signing key (`settings.signing_key()`), which keyed erased addresses' hashes kept
    before the store had its own erasure key."""
    address = normalise_email(email)
    erased = erased_row(session, address, key)
    erased_at = erased.erased_at if erased else None
    subscriber = find_by_email(session, address)
    if subscriber is None:
        if erased_at is None:
            return None
        return ReaderRecord(email=address, subscriber_id=None, status="erased", erased_at=erased_at)
    now = now or datetime.now(UTC)
    chosen = chosen_categories(subscriber)
    events, events_total = _events(session, subscriber.id, limit)
    deliveries, deliveries_total = _deliveries(session, subscriber.id, limit)
    clicks, clicks_total = _clicks(session, subscriber.id, limit)
    return ReaderRecord(
        email=address,
        subscriber_id=subscriber.id,
        status=subscriber.status,
        source=subscriber.source,
        created_at=subscriber.created_at,
        requested_at=subscriber.requested_at,
        confirmed_at=subscriber.confirmed_at,
        unsubscribed_at=subscriber.unsubscribed_at,
        paused_until=subscriber.paused_until,
        paused=subscriber.paused_until is not None and subscriber.paused_until > now,
        tracking=subscriber.tracking,
        categories=tuple(sorted(chosen)) if chosen is not None else None,
        erased_at=erased_at,
        events=events,
        events_total=events_total,
        deliveries=deliveries,
        deliveries_total=deliveries_total,
        clicks=clicks,
        clicks_total=clicks_total,
    )


def _count(session: Session, column, subscriber_id: int) -> int:
    return session.execute(select(func.count()).where(column == subscriber_id)).scalar_one()


def _events(session: Session, subscriber_id: int, limit: int) -> tuple[list[ReaderEvent], int]:
    rows = session.execute(
        select(
            SubscriberEvent.kind,
            SubscriberEvent.source,
            SubscriberEvent.at,
            SubscriberEvent.detail,
            Issue.week,
        )
        .outerjoin(Issue, Issue.id == SubscriberEvent.issue_id)
        .where(SubscriberEvent.subscriber_id == subscriber_id)
        .order_by(SubscriberEvent.at.desc(), SubscriberEvent.id.desc())
        .limit(limit)
    )
    events = [ReaderEvent(*row) for row in rows]
    return events, _count(session, SubscriberEvent.subscriber_id, subscriber_id)


def _deliveries(session: Session, subscriber_id: int, limit: int) -> tuple[list[ReaderDelivery], int]:
    rows = session.execute(
        select(
            Delivery.id,
            Issue.week,
            Delivery.status,
            Delivery.sent_at,
            Delivery.last_error,
            Delivery.provider,
        )
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Issue.week.desc(), Delivery.id.desc())
        .limit(limit)
    ).all()
    outcomes: dict[int, list[str]] = defaultdict(list)
    if rows:
        reported = session.execute(
            select(ProviderEvent.delivery_id, ProviderEvent.kind)
            .where(ProviderEvent.delivery_id.in_([row[0] for row in rows]))
            .group_by(ProviderEvent.delivery_id, ProviderEvent.kind)
            .order_by(ProviderEvent.delivery_id, func.min(ProviderEvent.occurred_at))
        )
        for delivery_id, kind in reported:
            outcomes[delivery_id].append(kind)
    deliveries = [
        ReaderDelivery(week, status, sent_at, error, provider, tuple(outcomes[delivery_id]))
        for delivery_id, week, status, sent_at, error, provider in rows
    ]
    return deliveries, _count(session, Delivery.subscriber_id, subscriber_id)


def _clicks(session: Session, subscriber_id: int, limit: int) -> tuple[list[ReaderClick], int]:
    rows = session.execute(
        select(
            Issue.week,
            IssueLink.url,
            IssueLink.label,
            IssueLink.kind,
            LinkHit.at,
            LinkHit.method,
            LinkHit.machine,
            LinkHit.reason,
        )
        .join(IssueLink, IssueLink.id == LinkHit.link_id)
        .join(Issue, Issue.id == LinkHit.issue_id)
        .where(LinkHit.subscriber_id == subscriber_id)
        .order_by(LinkHit.at.desc(), LinkHit.id.desc())
        .limit(limit)
    )
    clicks = [ReaderClick(*row) for row in rows]
    return clicks, _count(session, LinkHit.subscriber_id, subscriber_id)


# --- the list week by week --------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekGrowth:
    week: str  # 2026-W48
    monday: date
    list_size: int  # active readers at the week's end
    signups: int  # signups asked for (not counting an active reader asking again)
    confirmations: int
    leaves: dict[str, int]  # by reason: unsubscribed, bounced, complained, erased

    @property
    def left(self) -> int:
        return sum(self.leaves.values())

    def as_json(self) -> dict:
        return asdict(self) | {"monday": self.monday.isoformat(), "left": self.left}


def list_growth(
    session: Session, weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None
) -> list[WeekGrowth]:
    """The last `weeks` ISO weeks in `zone` (this one included), oldest first."""
    return [
        WeekGrowth(
            week=row.week,
            monday=Week.parse(row.week).monday,
            list_size=row.list_size,
            signups=row.signups,
            confirmations=row.confirmations,
            leaves={reason: row.leaves.get(reason, 0) for reason in LEAVES},
        )
        for row in list_movements(session, weeks, zone, now)
    ]
