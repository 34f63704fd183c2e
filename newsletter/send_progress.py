"""How far a send has got, read from the ledger alone, so it is the same whoever sends: the console,
`newsletter issue send`, the scheduler or sender workers.

Progress is the rows that reached an end state (sent, failed, suppressed) over all of the issue's
rows; the rate is the messages sent in the last minute (or since the first of them, if sooner); the
time left is what is still owed at that rate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from newsletter.models import Delivery, DeliveryStatus, Issue, utcnow
from newsletter.reports import ledger_counts

RATE_WINDOW = timedelta(seconds=60)
REASONS_SHOWN = 10


@dataclass
class Progress:
    week: str
    status: str
    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    suppressed: int
    failed_reasons: list[tuple[str, int]] = field(default_factory=list)
    suppressed_reasons: list[tuple[str, int]] = field(default_factory=list)
    rate: float = 0.0  # messages per second over the last minute
    seconds_left: float | None = None  # None: unknown (nothing sent lately) or nothing left
    sender: str | None = None  # the send lease's holder while one holds it

    @property
    def settled(self) -> int:
        return self.sent + self.failed + self.suppressed

    @property
    def percent(self) -> float:
        return round(100 * self.settled / self.total, 1) if self.total else 0.0

    @property
    def owed(self) -> int:
        return self.queued + self.sending

    def as_json(self) -> dict:
        return asdict(self) | {"settled": self.settled, "percent": self.percent, "owed": self.owed}


def _reasons(session: Session, issue_id: int, status: str) -> list[tuple[str, int]]:
    query = (
        select(Delivery.last_error, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.status == status)
        .group_by(Delivery.last_error)
        .order_by(func.count().desc())
        .limit(REASONS_SHOWN)
    )
    return [(reason or "unknown", count) for reason, count in session.exec(query)]


def send_progress(session: Session, issue_id: int, now: datetime | None = None) -> Progress:
    """The issue's ledger as it stands (LookupError for no such issue)."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LookupError(f"no issue with id {issue_id}")
    now = now or utcnow()
    counts = ledger_counts(session, issue_id)  # a rollup once the send is over
    progress = Progress(
        week=issue.week,
        status=issue.status,
        total=sum(counts.values()),
        queued=counts.get(DeliveryStatus.QUEUED, 0),
        sending=counts.get(DeliveryStatus.SENDING, 0),
        sent=counts.get(DeliveryStatus.SENT, 0),
        failed=counts.get(DeliveryStatus.FAILED, 0),
        suppressed=counts.get(DeliveryStatus.SUPPRESSED, 0),
        sender=issue.sender if issue.sender_lease_until and issue.sender_lease_until > now else None,
    )
    if progress.failed:
        progress.failed_reasons = _reasons(session, issue_id, DeliveryStatus.FAILED)
    if progress.suppressed:
        progress.suppressed_reasons = _reasons(session, issue_id, DeliveryStatus.SUPPRESSED)
    if progress.owed:
        since = now - RATE_WINDOW
        recent, first = session.exec(
            select(func.count(), func.min(Delivery.sent_at)).where(
                Delivery.issue_id == issue_id, Delivery.sent_at >= since
            )
        ).one()
        if recent:
            first = first if first.tzinfo else first.replace(tzinfo=now.tzinfo)
            span = max(1.0, (now - max(first, since)).total_seconds())
            progress.rate = round(recent / span, 1)
            progress.seconds_left = round(progress.owed / (recent / span), 1)
    return progress
