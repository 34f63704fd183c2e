"""The delivery ledger: one row per (issue, subscriber), and every move a row makes.

queued -> sending (claimed, with a batch key, committed before the request goes out)
        -> sent | failed (with the reason) | suppressed (the reader left, paused, bounced...)

Each function is one short transaction, so the ledger is consistent whenever the process dies.
Any number of senders share one issue: a batch is claimed with `SELECT ... FOR UPDATE SKIP LOCKED`
(on PostgreSQL; SQLite's single writer serialises claims anyway) and held under a lease that its
sender renews. Rows whose lease ran out, or whose sender is a dead process on this machine, are
taken over by another sender, which reconciles them with the provider before anything is resent.

This module holds the issue-wide moves (writing the ledger, retrying, cancelling); a sender's batch
moves (claim, lease, settle) are `newsletter.ledger_batches`, re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    update,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.db import session_scope
from newsletter.issue_reads import delivery_counts
from newsletter.ledger_batches import (  # noqa: F401  (the ledger's API: senders and tests ask it)
    ClaimCursor,
    Claimed,
    claim,
    mark,
    mark_sent,
    new_batch_key,
    release_rows,
    renew_rows,
    suppress_readers,
    take_over,
)
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.send_lease import (  # noqa: F401  (the ledger's API: senders and tests ask it)
    LeaseTaken,
    release_lease,
    renew_lease,
    sender_identity,
    take_lease,
)
from newsletter.send_lease import (
    alive as holder_alive,
)


def not_paused(now: datetime):
    return or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= now)


def enqueue(session: Session, issue_id: int) -> int:
    """Ledger rows for every active, unpaused reader who has none for this issue yet; returns how many."""
    now = utcnow()
    already = exists().where(and_(Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id))
    source = select(
        literal(issue_id),
        Subscriber.id,
        literal(DeliveryStatus.QUEUED.value),
        literal(0),
        literal(now),
        literal(now),
    ).where(Subscriber.status == SubscriberStatus.ACTIVE, ~already, not_paused(now))
    columns = ["issue_id", "subscriber_id", "status", "attempts", "created_at", "updated_at"]
    statement = insert(Delivery.__table__).from_select(columns, source)
    if session.get_bind().dialect.name == "sqlite":
        return session.execute(statement).rowcount or 0
    # SQLAlchemy 2.1 with psycopg reports -1 rows for INSERT ... SELECT: count what RETURNING gives.
    inserted = statement.returning(literal(1)).cte("inserted")
    return session.execute(select(func.count()).select_from(inserted)).scalar_one()


class IssueCancelled(RuntimeError):
    """The issue was cancelled (perhaps a moment ago, by an editor): it is not sent."""


@dataclass(frozen=True)
class BeforeSend:
    """An issue as it was before a send opened it, so a send that fails before its first message
    reaches the provider can put it back (`undo_open`)."""

    status: str
    approved_at: datetime | None
    send_started_at: datetime | None
    rows: int
    token_expires_at: int | None = None


def open_send(session: Session, issue_id: int) -> dict[str, int]:
    """Mark the issue `sending` and write its ledger (rows for readers who have none yet); returns
    the ledger's counts. The scheduler in worker mode stops here: workers do the sending.
    The issue row is locked, so an editor's cancel a moment earlier is seen, never overwritten."""
    issue = session.get(Issue, issue_id, with_for_update=True)
    if issue.status == IssueStatus.CANCELLED:
        raise IssueCancelled(f"issue {issue.week} is cancelled; it will not be sent")
    now = utcnow()
    issue.approved_at = issue.approved_at or now
    issue.send_started_at = issue.send_started_at or now
    issue.status = IssueStatus.SENDING
    session.add(issue)
    enqueue(session, issue_id)
    return counts(session, issue_id)


def before_send(session: Session, issue_id: int) -> BeforeSend:
    issue = session.get(Issue, issue_id)
    total = session.exec(select(func.count()).where(Delivery.issue_id == issue_id)).one()
    return BeforeSend(issue.status, issue.approved_at, issue.send_started_at, total, issue.token_expires_at)


def undo_open(engine: Engine, issue_id: int, before: BeforeSend, me: str, fresh_keys: set[str]) -> None:
    """Put an issue back as it was before a send that failed before handing any message over.

    Rows `me` claimed in that send go back to the queue (nothing of them left this process). Rows it
    took over from a dead sender stay `sending`, released, so the next send reconciles them. The
    ledger rows the send wrote are deleted and the issue gets its old state back, unless some other
    sender (a worker) has moved a row meanwhile: then the issue stays `sending` (cancellable).
    """
    now = utcnow()
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id, with_for_update=True)
        mine = and_(Delivery.issue_id == issue_id, col(Delivery.batch_key).in_(fresh_keys))
        if fresh_keys:
            session.execute(
                update(Delivery)
                .where(mine, col(Delivery.status).in_([DeliveryStatus.SENDING, DeliveryStatus.SUPPRESSED]))
                .values(
                    status=DeliveryStatus.QUEUED,
                    batch_key=None,
                    claimed_by=None,
                    lease_until=None,
                    last_error=None,
                    attempts=Delivery.attempts - 1,
                    updated_at=now,
                )
            )
        session.execute(
            update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_by == me,
            )
            .values(claimed_by=None, lease_until=None)
        )
        if issue.status != IssueStatus.SENDING or before.status not in (
            IssueStatus.DRAFT,
            IssueStatus.APPROVED,
        ):
            return
        if before.rows == 0:
            session.execute(
                delete(Delivery).where(
                    Delivery.issue_id == issue_id,
                    col(Delivery.status).in_([DeliveryStatus.QUEUED, DeliveryStatus.SUPPRESSED]),
                    Delivery.attempts == 0,
                )
            )
        left = session.exec(select(func.count()).where(Delivery.issue_id == issue_id)).one()
        if left == before.rows:
            issue.status = before.status
            issue.approved_at, issue.send_started_at = before.approved_at, before.send_started_at
            issue.token_expires_at = before.token_expires_at
            issue.updated_at = now
            session.add(issue)


def counts(session: Session, issue_id: int) -> dict[str, int]:
    """How many of the issue's rows are in each status (one read, shared with `newsletter issue show`)."""
    return delivery_counts(session, issue_id)


def failure_reasons(session: Session, issue_id: int, limit: int = 10) -> list[tuple[str, int]]:
    query = (
        select(Delivery.last_error, func.count())
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.FAILED)
        .group_by(Delivery.last_error)
        .order_by(func.count().desc())
        .limit(limit)
    )
    return [(reason or "unknown", count) for reason, count in session.exec(query)]


def retry_failed(session: Session, issue_id: int) -> int:
    """Failed rows go back to the queue and the issue is sending again (`newsletter issue retry`).
    A cancelled issue keeps its failures: it is never sent again."""
    issue = session.get(Issue, issue_id)
    if issue is None or issue.status not in (IssueStatus.SENDING, IssueStatus.SENT):
        return 0
    result = session.execute(
        update(Delivery)
        .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.QUEUED, batch_key=None, updated_at=utcnow())
    )
    requeued = result.rowcount or 0
    if requeued:
        session.execute(update(Issue).where(Issue.id == issue_id).values(status=IssueStatus.SENDING))
    return requeued


# --- cancelling a send that stopped ---------------------------------------------------------------------

CANCELLED_QUEUED = "send cancelled by an editor"
CANCELLED_IN_FLIGHT = (
    "send cancelled by an editor; whether this one went out before its sender stopped is unknown"
)


class SendInProgress(RuntimeError):
    """A live sender is working on the issue: it cannot be cancelled under its feet."""


def cancel_send(session: Session, issue_id: int) -> dict[str, int]:
    """Cancel an issue whose send stopped (a fatal error, a crash), in the caller's transaction.

    Refused while a live sender holds the issue's lease or a row in flight. Otherwise the rows still
    queued are suppressed (CANCELLED_QUEUED), rows a dead sender left in flight are suppressed as of
    unknown outcome (CANCELLED_IN_FLIGHT), sent and failed rows stay as they are, and the issue is
    `cancelled`. Returns the ledger's counts after."""
    issue = session.get(Issue, issue_id, with_for_update=True)
    now = utcnow()
    holder, until = issue.sender, issue.sender_lease_until
    if holder and until and until > now and holder_alive(holder):
        raise SendInProgress(
            f"issue {issue.week} is being sent by {holder} (lease until {until:%H:%M:%S} UTC); stop "
            "that send first (Ctrl-C or SIGTERM lets it finish its batches), then cancel"
        )
    in_flight = session.exec(
        select(Delivery.claimed_by, Delivery.lease_until).where(
            Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SENDING
        )
    ).all()
    live = {who for who, lease in in_flight if who and lease and lease > now and holder_alive(who)}
    if live:
        raise SendInProgress(
            f"issue {issue.week} has deliveries in flight with {', '.join(sorted(live))}; stop the "
            "sender workers first, then cancel"
        )
    for status, reason in (
        (DeliveryStatus.QUEUED, CANCELLED_QUEUED),
        (DeliveryStatus.SENDING, CANCELLED_IN_FLIGHT),
    ):
        session.execute(
            update(Delivery)
            .where(Delivery.issue_id == issue_id, Delivery.status == status)
            .values(
                status=DeliveryStatus.SUPPRESSED,
                last_error=reason,
                claimed_by=None,
                lease_until=None,
                updated_at=now,
            )
        )
    issue.status, issue.updated_at = IssueStatus.CANCELLED, now
    issue.sender = issue.sender_lease_until = None
    session.add(issue)
    session.flush()
    return counts(session, issue_id)
