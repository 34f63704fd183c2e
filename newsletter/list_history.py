"""The list at past moments: its size (readers whose latest change of state made them active) and
the events so far by kind, both kept once counted, so a week's figures cost a week's events.

`list_points(session, moments)` gives, for each moment, the list's size then and how many events of
each kind came before it (cumulative: a week's movements are the difference at its two ends).
Points at past moments are kept (`ListSize`) and exact: a trigger (migration 0012) deletes every
point after an event that is inserted, changed or deleted (an erasure deletes a reader's past, an
import may write events of the past). The points still missing are counted from the latest kept
one before them, over the events since; kept ones are counted on PostgreSQL in a transaction of
their own under a SHARE lock on the event trail (no write under way is missed, none slips in
before the trigger can see the new points); on SQLite every transaction holds the write lock.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, and_, case, cast, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import Session

from newsletter.models import STATE_EVENTS, ListSize, SubscriberEvent, utcnow
from newsletter.reports import ALREADY_ACTIVE, SIGNUP_REQUESTED
from newsletter.rollups import under_share_lock

JOINS = ("confirmed", "subscribed")
STATES = STATE_EVENTS  # joins, leaves and an import's suppression: what ix_subscriberevent_state holds
AGAIN = "signup_requested/already active"  # its key in the counts


@dataclass(frozen=True)
class Point:
    size: int
    counts: Counter  # events before the moment, by kind (and AGAIN)


def list_points(session: Session, moments: list[datetime]) -> list[Point]:
    """The list at each of `moments` (ascending)."""
    if not moments:
        return []
    known = {
        row.moment: Point(row.size, Counter(json.loads(row.counts)))
        for row in session.execute(
            select(ListSize.moment, ListSize.size, ListSize.counts).where(ListSize.moment.in_(moments))
        )
    }
    missing = [moment for moment in moments if moment not in known]
    if missing:
        now = utcnow()
        past = [moment for moment in missing if moment <= now]
        found = None
        if past and session.get_bind().dialect.name == "postgresql":

            def count_and_keep(own: Session) -> dict[datetime, Point]:
                counted = _count_points(own, missing)
                _keep(own, {moment: counted[moment] for moment in past}, now)
                return counted

            found = under_share_lock(session, ("subscriberevent",), count_and_keep)[1]
        elif past:  # SQLite: this transaction holds the store's write lock already
            found = _count_points(session, missing)
            _keep(session, {moment: found[moment] for moment in past}, now)
        known |= found if found is not None else _count_points(session, missing)
    return [known[moment] for moment in moments]


def _keep(session: Session, points: dict[datetime, Point], now: datetime) -> None:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [
        {"moment": moment, "size": point.size, "counts": json.dumps(point.counts), "computed_at": now}
        for moment, point in points.items()
    ]
    session.execute(insert(ListSize).values(rows).on_conflict_do_nothing())


def _count_points(session: Session, moments: list[datetime]) -> dict[datetime, Point]:
    """The points at `moments` from the event trail: from the latest kept point before them if there
    is one (only the events since are read), else from the beginning."""
    anchor = session.execute(
        select(ListSize.moment, ListSize.size, ListSize.counts)
        .where(ListSize.moment < moments[0])
        .order_by(ListSize.moment.desc())
        .limit(1)
    ).first()
    if anchor is None:
        sizes = _sizes_from_events(session, moments)
        counts = _counts_from_events(session, moments, None, Counter())
        return {m: Point(size, count) for m, size, count in zip(moments, sizes, counts, strict=True)}
    points = [anchor.moment, *moments]
    base = anchor.size - _no_reader_active(session, [anchor.moment])[0]
    sizes = _sizes_from_events(session, points, base)[1:]
    counts = _counts_from_events(session, points, anchor.moment, Counter(json.loads(anchor.counts)))[1:]
    return {m: Point(size, count) for m, size, count in zip(moments, sizes, counts, strict=True)}


def _counts_from_events(
    session: Session, moments: list[datetime], since: datetime | None, base: Counter
) -> list[Counter]:
    """The events before each of `moments` by kind: `base` (those before `since`) plus the events
    from `since` on (from the beginning when None), in two queries (index-only on (at, kind), and
    the small partial index of signups asked again)."""
    event = SubscriberEvent
    which = case(*[(event.at < moment, n) for n, moment in enumerate(moments)], else_=len(moments))
    window = and_(event.at < moments[-1], *([event.at >= since] if since is not None else []))
    buckets: list[Counter] = [Counter() for _ in moments]
    for n, kind, count in session.execute(
        select(which, event.kind, func.count()).where(window).group_by(which, event.kind)
    ):
        buckets[n][kind] += count
    for n, count in session.execute(
        select(which, func.count())
        .where(window, event.kind == SIGNUP_REQUESTED, event.detail == ALREADY_ACTIVE)
        .group_by(which)
    ):
        buckets[n][AGAIN] += count
    running, result = Counter(base), []
    for bucket in buckets:
        running.update(bucket)
        result.append(Counter(running))
    return result


def _sizes_from_events(session: Session, moments: list[datetime], base: int | None = None) -> list[int]:
    """The sizes at `moments` (ascending), in three queries whatever their number; `base`, when
    known, is the size at the first of them without the readerless events (`_no_reader_active`).

    A reader's latest change of state before a moment is their state event of highest id among
    those before it. Readers with no state event between the first moment and the last have the
    same latest one at every moment, so only the others ("touched") are looked at per moment:
    size(m) = size(first) - touched active at first + touched active at m. One aggregate finds
    both the latest event and whether it is a join: the maximum of id * 2 + (1 for a join)."""
    if session.get_bind().dialect.name == "postgresql":
        # Compiling these plans (JIT) costs more than running them; until the transaction ends.
        session.execute(text("SET LOCAL jit = off"))
    first, last = moments[0], moments[-1]
    event = SubscriberEvent
    state = and_(event.kind.in_(STATES), event.subscriber_id.is_not(None))
    packed = cast(event.id, BigInteger) * 2 + case((event.kind.in_(JOINS), 1), else_=0)
    if base is None:
        latest = (
            select(func.max(packed).label("latest"))
            .where(state, event.at < first)
            .group_by(event.subscriber_id)
            .subquery()
        )
        base = session.execute(select(func.count()).where(latest.c.latest % 2 == 1)).scalar_one()
    sizes = [base] * len(moments)
    if len(moments) > 1:
        changes = (  # OFFSET 0: each row's packed value made once, not once per moment below
            select(event.subscriber_id.label("reader"), event.at.label("at"), packed.label("packed"))
            .where(state, event.at >= first, event.at < last)
            .offset(0)
            .subquery()
        )
        window = (
            select(
                changes.c.reader,
                *[
                    func.max(case((changes.c.at < moment, changes.c.packed))).label(f"w{n}")
                    for n, moment in enumerate(moments)
                ],
            )
            .group_by(changes.c.reader)
            .subquery()
        )
        earlier = aliased(SubscriberEvent)
        before = (
            select(
                func.coalesce(
                    func.max(cast(earlier.id, BigInteger) * 2 + case((earlier.kind.in_(JOINS), 1), else_=0)),
                    0,
                )
            )
            .where(earlier.subscriber_id == window.c.reader, earlier.kind.in_(STATES), earlier.at < first)
            .scalar_subquery()
        )
        # OFFSET 0 keeps the planner from copying the subquery into each of the counts below
        touched = (
            select(before.label("w"), *[window.c[f"w{n}"] for n in range(len(moments))]).offset(0).subquery()
        )

        def active_at(n: int):
            then = func.coalesce(touched.c[f"w{n}"], 0)
            return case((touched.c.w > then, touched.c.w), else_=then) % 2 == 1

        active = session.execute(
            select(*[func.count().filter(active_at(n)) for n in range(len(moments))])
        ).one()
        sizes = [base - active[0] + active[n] for n in range(len(moments))]
    return [size + joined for size, joined in zip(sizes, _no_reader_active(session, moments), strict=True)]


def _no_reader_active(session: Session, moments: list[datetime]) -> list[int]:
    """The events of no reader (NULL: cut loose by a purge) count as one reader of their own, as
    grouping by reader makes them; normally there are none."""
    rows = session.execute(
        select(SubscriberEvent.id, SubscriberEvent.kind, SubscriberEvent.at).where(
            SubscriberEvent.subscriber_id.is_(None),
            SubscriberEvent.kind.in_(STATES),
            SubscriberEvent.at < moments[-1],
        )
    ).all()
    result = []
    for moment in moments:
        before = [(row.id, row.kind) for row in rows if row.at < moment]
        result.append(1 if before and max(before)[1] in JOINS else 0)
    return result
