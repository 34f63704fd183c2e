"""How the list moves week by week: its size at each week's end (from the event trail), signups,
confirmations and leaves by reason, and each week's issue with its recipients and human clickers.

`weekly_stats` is `newsletter stats`; `list_movements` is the list's side alone, which the console's
readers page charts (`audience.list_growth`). Like the issue report (newsletter/reports.py), every
figure is a query over the rows, never a counter kept on the side; unlike it, a week's figures cost
the same however many weeks are asked for (see `list_sizes_at`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, cast, func, select, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import Session

from newsletter.curation import Week
from newsletter.models import STATE_EVENTS, Issue, ListSize, SubscriberEvent, utcnow
from newsletter.reports import ALREADY_ACTIVE, LEAVES, SIGNUP_REQUESTED, human_readers, recipients, tracked
from newsletter.rollups import under_share_lock


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


JOINS = ("confirmed", "subscribed")


def last_weeks(weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None) -> list[Week]:
    """The last `weeks` ISO weeks in `zone`, this one included, oldest first."""
    current = Week.containing(now or datetime.now(UTC), zone)
    mondays = [current.monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    return [Week(*monday.isocalendar()[:2]) for monday in mondays]


def list_movements(
    session: Session, weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None
) -> list[WeekFigures]:
    """How the list moved in each of the last `weeks` weeks, oldest first: its size at the week's
    end, signups, confirmations and leaves by reason (the issue columns left empty). The same
    queries however many weeks: two over the window's events, three for the sizes."""
    chosen = last_weeks(weeks, zone, now)
    bounds = [week.bounds(zone) for week in chosen]
    ends = [end for _, end in bounds]
    which = case(*[(SubscriberEvent.at < end, n) for n, end in enumerate(ends)], else_=len(ends))
    window = and_(SubscriberEvent.at >= bounds[0][0], SubscriberEvent.at < ends[-1])
    kinds: list[Counter] = [Counter() for _ in chosen]
    counted = session.execute(  # index-only on (at, kind)
        select(which, SubscriberEvent.kind, func.count()).where(window).group_by(which, SubscriberEvent.kind)
    )
    for n, kind, count in counted:
        kinds[n][kind] += count
    again = session.execute(  # an active reader asking again is no signup (a small partial index)
        select(which, func.count())
        .where(window, SubscriberEvent.kind == SIGNUP_REQUESTED, SubscriberEvent.detail == ALREADY_ACTIVE)
        .group_by(which)
    )
    signups = [kinds[n][SIGNUP_REQUESTED] for n in range(len(chosen))]
    for n, count in again:
        signups[n] -= count
    sizes = list_sizes_at(session, ends)
    return [
        WeekFigures(
            week=week.label,
            list_size=size,
            signups=signups[n],
            confirmations=kinds[n]["confirmed"],
            leaves={reason: kinds[n][reason] for reason in LEAVES},
        )
        for n, (week, size) in enumerate(zip(chosen, sizes, strict=True))
    ]


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


STATES = STATE_EVENTS  # joins, leaves and an import's suppression: what ix_subscriberevent_state holds


def list_sizes_at(session: Session, moments: list[datetime]) -> list[int]:
    """`list_size_at` for each of `moments` (ascending). The sizes at past moments are kept
    (`ListSize`, exact: a trigger deletes every size after a state event that is inserted, changed or
    deleted), so once they are counted only the moments still to come are: from the latest kept size
    before them, over the state events since (a week's, not the list's whole history). Kept sizes are
    counted on PostgreSQL in a transaction of their own under a SHARE lock on the event trail (no
    write under way can be missed, none can slip in before the trigger sees the sizes); on SQLite
    every transaction holds the store's write lock already."""
    if not moments:
        return []
    known = {
        row.moment: row.size
        for row in session.execute(select(ListSize.moment, ListSize.size).where(ListSize.moment.in_(moments)))
    }
    missing = [moment for moment in moments if moment not in known]
    if missing:
        now = utcnow()
        past = [moment for moment in missing if moment <= now]
        found = None
        if past and session.get_bind().dialect.name == "postgresql":

            def count_and_keep(own: Session) -> dict[datetime, int]:
                counted = _count_sizes(own, missing)
                _keep_sizes(own, {moment: counted[moment] for moment in past}, now)
                return counted

            found = under_share_lock(session, ("subscriberevent",), count_and_keep)[1]
        elif past:  # SQLite: this transaction holds the store's write lock already
            found = _count_sizes(session, missing)
            _keep_sizes(session, {moment: found[moment] for moment in past}, now)
        known |= found if found is not None else _count_sizes(session, missing)
    return [known[moment] for moment in moments]


def _keep_sizes(session: Session, sizes: dict[datetime, int], now: datetime) -> None:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [{"moment": moment, "size": size, "computed_at": now} for moment, size in sizes.items()]
    session.execute(insert(ListSize).values(rows).on_conflict_do_nothing())


def _count_sizes(session: Session, moments: list[datetime]) -> dict[datetime, int]:
    """The sizes at `moments` from the event trail: from the latest kept size before them if there
    is one (only the readers with a state event since are looked at), else from the beginning."""
    anchor = session.execute(
        select(ListSize.moment, ListSize.size)
        .where(ListSize.moment < moments[0])
        .order_by(ListSize.moment.desc())
        .limit(1)
    ).first()
    if anchor is None:
        return dict(zip(moments, _sizes_from_events(session, moments), strict=True))
    points = [anchor.moment, *moments]
    base = anchor.size - _no_reader_active(session, [anchor.moment])[0]
    return dict(zip(moments, _sizes_from_events(session, points, base)[1:], strict=True))


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
