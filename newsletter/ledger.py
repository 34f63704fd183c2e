"""The delivery ledger: one row per (issue, subscriber), and every move a row makes.

queued -> sending (claimed, with a batch key, committed before the request goes out)
        -> sent | failed (with the reason) | suppressed (the reader left, paused, bounced...)

Each function is one short transaction, so the ledger is consistent whenever the process dies.
Any number of senders share one issue: a batch is claimed with `SELECT ... FOR UPDATE SKIP LOCKED`
(on PostgreSQL; SQLite's single writer serialises claims anyway) and held under a lease that its
sender renews. Rows whose lease ran out, or whose sender is a dead process on this machine, are
taken over by another sender, which reconciles them with the provider before anything is resent.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

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
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from newsletter.db import session_scope
from newsletter.issue_reads import delivery_counts
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

DELIVERY, SUBSCRIBER = Delivery.__table__, Subscriber.__table__


class Claimed(NamedTuple):
    delivery_id: int
    subscriber_id: int
    email: str
    categories: str | None
    batch_key: str
    tracked: bool = True  # the reader's tracking choice: False gets plain links


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


def new_batch_key() -> str:
    return secrets.token_hex(12)


@dataclass
class ClaimCursor:
    """Where a sender's next claim starts looking. Queued rows are claimed in id order, so below the
    cursor nearly everything is taken; starting there keeps a claim's cost at one batch instead of
    walking every row already sent (PostgreSQL keeps their dead index entries until a vacuum: a
    million-reader send slowed to 140 ms per claim without it). When nothing is left above it, one
    scan from the start finds rows put back in the queue (a retry, a take-over)."""

    after: int = 0


def claim(
    engine: Engine,
    issue_id: int,
    size: int,
    me: str,
    lease_seconds: float,
    cursor: ClaimCursor | None = None,
) -> tuple[list[Claimed], dict[str, int]]:
    """The next queued rows, marked `sending` under one new batch key and `me`'s lease, committed.
    Rows another sender is claiming at the same moment are skipped, not waited for.

    Rows whose reader is no longer active or has paused since the ledger was written are
    suppressed instead, so unsubscribing stops the very next batch. Returns the claimed rows and how
    many were suppressed for each reason.

    The select and the batch's update are the driver's own statements, of one text for every batch
    (see `_claim_sql`): built with SQLAlchemy, the update's `IN (...)` list was compiled afresh for
    every batch, and the two statements cost more than the batch's requests' own set-up.
    """
    suppressed: dict[str, int] = {}
    cursor = cursor or ClaimCursor()
    while True:
        with engine.begin() as connection:
            dialect = connection.dialect
            select_sql, update_sql = _claim_sql(dialect.name)
            queued = (issue_id, DeliveryStatus.QUEUED.value, cursor.after, size)
            rows = connection.exec_driver_sql(select_sql, queued).fetchall()
            if not rows:
                if cursor.after:
                    cursor.after = 0  # once more from the start, for rows put back in the queue
                    continue
                return [], suppressed
            cursor.after = max(cursor.after, rows[-1][0])
            now = utcnow()
            key = new_batch_key()
            read_time = _result_processor(dialect)
            left = [r[0] for r in rows if r[4] != SubscriberStatus.ACTIVE]
            paused = [
                r[0] for r in rows if r[4] == SubscriberStatus.ACTIVE and r[5] and read_time(r[5]) > now
            ]
            gone = set(left) | set(paused)
            batch = [Claimed(r[0], r[1], r[2], r[3], key, bool(r[6])) for r in rows if r[0] not in gone]
            for ids, reason in ((left, "reader no longer active"), (paused, "reader paused")):
                if ids:
                    _set(connection, ids, status=DeliveryStatus.SUPPRESSED, last_error=reason, updated_at=now)
                    suppressed[reason] = suppressed.get(reason, 0) + len(ids)
            if batch:
                stored = _bind_processor(dialect)  # times as the column type stores them
                ids = [b.delivery_id for b in batch]
                values = (DeliveryStatus.SENDING.value, key, stored(now), me)
                values += (stored(now + timedelta(seconds=lease_seconds)), stored(now))
                if dialect.name == "postgresql":
                    connection.exec_driver_sql(update_sql, (*values, ids))
                else:
                    connection.exec_driver_sql(_in_list(update_sql, len(ids)), (*values, *ids))
                return batch, suppressed


@functools.cache
def _claim_sql(dialect_name: str) -> tuple[str, str]:
    """(the claim's select, its update) for this database, as the driver takes them.

    The select takes (issue id, queued, the cursor, the batch size). On PostgreSQL it skips rows
    another sender has locked (`FOR UPDATE SKIP LOCKED`; SQLite's single writer serialises claims
    anyway) and the update names its rows as one array parameter, so every batch runs the one
    statement psycopg prepares on the server; SQLite's takes an `IN` list (`_in_list`), one text per
    batch size, which the sqlite3 module keeps compiled."""
    select_sql = (
        "SELECT delivery.id, delivery.subscriber_id, subscriber.email, subscriber.categories, "
        "subscriber.status, subscriber.paused_until, subscriber.tracking "
        "FROM delivery JOIN subscriber ON subscriber.id = delivery.subscriber_id "
        "WHERE delivery.issue_id = ? AND delivery.status = ? AND delivery.id > ? ORDER BY delivery.id LIMIT ?"
    )
    update_sql = (
        "UPDATE delivery SET status = ?, batch_key = ?, claimed_at = ?, claimed_by = ?, lease_until = ?, "
        "attempts = delivery.attempts + 1, updated_at = ? WHERE delivery.id "
    )
    if dialect_name == "postgresql":
        locked = select_sql + " FOR UPDATE OF delivery SKIP LOCKED"
        return locked.replace("?", "%s"), update_sql.replace("?", "%s") + "= ANY(%s)"
    return select_sql, update_sql + "IN ({})"


@functools.cache
def _in_list(update_sql: str, count: int) -> str:
    return update_sql.format(", ".join(["?"] * count))


def _bind_processor(dialect):
    """A datetime as the ledger's time columns store it on this database."""
    return DELIVERY.c.updated_at.type._cached_bind_processor(dialect) or (lambda value: value)


def _result_processor(dialect):
    """A stored time read back as the ORM reads it (aware, UTC)."""
    return SUBSCRIBER.c.paused_until.type._cached_result_processor(dialect, None) or (lambda value: value)


def _set(connection: Connection | Session, ids: list[int], **changes) -> None:
    """Set `changes` on the delivery rows `ids` (one Core UPDATE, in the caller's transaction)."""
    connection.execute(update(DELIVERY).where(DELIVERY.c.id.in_(ids)).values(**changes))


def take_over(engine: Engine, issue_id: int, me: str, lease_seconds: float) -> dict[str, list[Claimed]]:
    """Rows left `sending` by a sender that is gone (its lease ran out, or it was a process on this
    machine that no longer runs), now under `me`'s lease; grouped by batch key, in claim order.
    Rows of a live sender are never taken."""
    now = utcnow()
    with session_scope(engine) as session:
        query = (
            select(
                Delivery.id,
                Delivery.subscriber_id,
                Subscriber.email,
                Subscriber.categories,
                Delivery.batch_key,
                Delivery.claimed_by,
                Delivery.lease_until,
                Subscriber.tracking,
            )
            .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SENDING)
            .order_by(Delivery.id)
            .with_for_update(skip_locked=True, of=Delivery)
        )
        groups: dict[str, list[Claimed]] = {}
        alive: dict[str, bool] = {}
        for row in session.exec(query):
            holder, until = row[5], row[6]
            if holder == me:
                continue
            if holder and until and until > now and alive.setdefault(holder, holder_alive(holder)):
                continue
            claimed = Claimed(*row[:4], row[4] or "", row[7])
            groups.setdefault(claimed.batch_key, []).append(claimed)
        taken = [row.delivery_id for rows in groups.values() for row in rows]
        if taken:
            _set(session, taken, claimed_by=me, lease_until=now + timedelta(seconds=lease_seconds))
    return groups


def release_rows(engine: Engine, ids: list[int], me: str) -> None:
    """Let go of rows `me` holds in flight without settling them: the next sender reconciles them."""
    if ids:
        with session_scope(engine) as session:
            session.execute(
                update(Delivery)
                .where(col(Delivery.id).in_(ids), Delivery.claimed_by == me)
                .values(claimed_by=None, lease_until=None)
            )


def renew_rows(engine: Engine, issue_id: int, me: str, lease_seconds: float) -> int:
    """Extend the lease on the rows `me` has in flight; returns how many."""
    with session_scope(engine) as session:
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.issue_id == issue_id,
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_by == me,
            )
            .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        )
        return result.rowcount or 0


def mark_sent(
    engine: Engine, provider: str, accepted: Iterable[tuple[int, str | None]], note: str | None = None
) -> int:
    """Record rows as sent with the provider's ids for them, in one transaction: on PostgreSQL one
    `UPDATE ... FROM (VALUES ...)` for the batch, on SQLite one prepared UPDATE executed per row.

    Both are the driver's own statements, with the time bound as the column type stores it: built
    with SQLAlchemy, a batch's VALUES list was compiled afresh for every batch (its rows are in the
    statement), which cost more than everything else the send does per batch."""
    rows = [(delivery_id, (message_id or "").strip("<>") or None) for delivery_id, message_id in accepted]
    if not rows:
        return 0
    sent = DeliveryStatus.SENT.value
    with engine.begin() as connection:
        when = _bind_processor(connection.dialect)(utcnow())  # as stored
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(
                _values_update(len(rows)),
                (sent, when, when, provider, note, *(value for row in rows for value in row)),
            )
        else:
            connection.exec_driver_sql(
                "UPDATE delivery SET status = ?, sent_at = ?, updated_at = ?, provider = ?, last_error = ?, "
                "provider_message_id = ? WHERE id = ?",
                [(sent, when, when, provider, note, mid, row_id) for row_id, mid in rows],
            )
    return len(rows)


@functools.cache
def _values_update(count: int) -> str:
    """PostgreSQL's one statement for `count` answers; the same text for every batch of that size,
    so psycopg prepares it once on the server."""
    answers = ", ".join(["(%s::integer, %s::varchar)"] * count)
    head = "UPDATE delivery SET status = %s, sent_at = %s, updated_at = %s, provider = %s, last_error = %s, "
    tail = "WHERE delivery.id = answers.id"
    middle = (
        f"provider_message_id = answers.mid FROM (VALUES {answers}) AS answers (id, mid) "  # placeholders
    )
    return head + middle + tail


def mark(
    engine: Engine, ids: list[int], status: DeliveryStatus, reason: str | None, provider: str | None = None
) -> None:
    if ids:
        with engine.begin() as connection:
            _set(
                connection,
                ids,
                status=status,
                last_error=(reason or "")[:2000] or None,
                updated_at=utcnow(),
                **({"provider": provider} if provider else {}),
            )


def suppress_readers(engine: Engine, failures: list[tuple[int, int, str]], source: str) -> None:
    """Permanent failures: the delivery is suppressed and the reader marked bounced, never retried."""
    if not failures:
        return
    from newsletter.subscriptions import record_event  # a bounce is rare: its module loads when needed

    now = utcnow()
    with session_scope(engine) as session:
        _set(
            session,
            [delivery_id for delivery_id, _, _ in failures],
            status=DeliveryStatus.SUPPRESSED,
            updated_at=now,
        )
        for delivery_id, subscriber_id, reason in failures:
            session.execute(
                update(Delivery).where(Delivery.id == delivery_id).values(last_error=reason[:2000])
            )
            subscriber = session.get(Subscriber, subscriber_id)
            if subscriber is not None and subscriber.status == SubscriberStatus.ACTIVE:
                subscriber.status, subscriber.updated_at = SubscriberStatus.BOUNCED, now
                session.add(subscriber)
                record_event(session, subscriber, "bounced", source=source, detail=reason[:500])


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
