"""The ledger's batch moves: the rows a sender claims, holds under its lease, and settles.

queued -> sending (`claim`: one batch key, the sender's lease, committed before the request goes out)
        -> sent (`mark_sent`) | failed (`mark`) | suppressed (`mark`, `suppress_readers`)

Every function is one short transaction, so the ledger is consistent whenever the process dies. A
sender's rows stay under its lease (`renew_rows`, `release_rows`); rows of a sender that is gone are
taken over by another (`take_over`), which reconciles them with the provider before anything is
resent. The issue-wide moves (opening a send, retrying, cancelling) are `newsletter.ledger`.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, col, select

from newsletter.db import session_scope
from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus, utcnow
from newsletter.send_lease import alive as holder_alive

DELIVERY, SUBSCRIBER = Delivery.__table__, Subscriber.__table__


class Claimed(NamedTuple):
    delivery_id: int
    subscriber_id: int
    email: str
    categories: str | None
    batch_key: str
    tracked: bool = True  # the reader's tracking choice: False gets plain links


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
