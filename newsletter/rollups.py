"""An issue's costliest report figures, counted once and kept while nothing they count changes.

A sent issue of a million readers has a million ledger rows, about as many provider events and half
a million hits: counting them on every view of the console's pages took most of a second. A rollup
(`IssueRollup`) keeps what the queries of one part found, as JSON:

- `ledger`: the issue's deliveries by status (its rows are final once the send is over: only a
  retry changes them again, and it makes the issue `sending` first);
- `events`: deliveries with each provider outcome, and the provider's opens;
- `hits`: clicks and human readers per link, machine clicks by reason;
- `readers`: the issue's human readers of its links and of its pixel (all the front page needs).

Rollups are made only once an issue's send is over (sent or cancelled). A rollup is exact or
absent. Triggers (migration 0012) delete it in the same transaction as any
insert, update or delete of the rows it counts, or any change of the issue's status for the ledger.
A rollup is made only where no such change can be under way: on PostgreSQL its queries run in a
transaction of their own that first takes a SHARE lock on the tables they count (waiting for the
writers already at work, holding off new ones until it commits, so the trigger of a write that
follows always finds the rollup); on SQLite every transaction holds the store's write lock already.

Hits and provider events keep arriving for days after a send, and only ever arrive: a rollup of
them (`hits`, `readers`, `events`) also records the highest row id it counted (`through_id`). A new
row above it leaves the rollup standing (the insert trigger drops it only for a row at or below
`through_id`, which a counted row never is: ids grow, and the count ran when no insert was under
way); a view adds the issue's rows above it (newsletter/report_growth.py: a few thousand rows where
a recount reads a million). Once more than REKEEP_AFTER new rows have arrived, a view keeps the
grown figures with a new `through_id`, under the same lock. An update or a delete of a counted row
(a retention fold, an erasure) still drops the rollup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import delete, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from newsletter.models import IssueRollup, IssueStatus, utcnow

KEPT_FIGURES = ("issuerollup", "listsize")  # tables of figures kept, never data of their own

# What each part counts: the tables a rollup of it must hold still while it is made.
TABLES = {
    "ledger": ("delivery",),
    "events": ("providerevent",),
    "hits": ("linkhit", "linkcount", "foldedclick", "issuelink"),
    "readers": ("linkhit", "linkcount", "foldedclick", "issuelink"),
}


SETTLED = (IssueStatus.SENT, IssueStatus.CANCELLED)  # a send is over: its ledger rows are final

# The parts whose rows only ever arrive, by the table whose ids say what a rollup counted.
GROWING = {"hits": "linkhit", "readers": "linkhit", "events": "providerevent"}
REKEEP_AFTER = 5000  # new ids past a rollup's through_id before a view keeps the grown figures
# grows(session, issue_id, kept figures, through_id) -> (figures now, new rows read), or None
Grows = Callable[[Session, int, Any, int], "tuple[Any, int] | None"]


def figures(
    session: Session,
    issue_id: int,
    part: str,
    count: Callable[[Session], Any],
    *,
    settled: bool,
    grows: Grows | None = None,
) -> Any:
    """The part's figures for the issue: its rollup if there is one (grown by the rows that arrived
    since, with `grows`, for the parts in GROWING), else `count(session)`, kept as a rollup when the
    issue's send is over (`settled`: its status is in SETTLED). While it is being sent everything
    moves: counted live, and no lock is taken. `count` returns plain JSON data."""
    found = session.get(IssueRollup, (issue_id, part))
    if found is not None:
        kept = json.loads(found.figures)
        if found.through_id is None or grows is None:
            return kept
        if _newest(session, GROWING[part]) - found.through_id > REKEEP_AFTER:
            value = _grown_and_kept(session, issue_id, part, grows)
            if value is not None:
                return value
        grown = grows(session, issue_id, kept, found.through_id)
        if grown is not None:
            return grown[0]
    if not settled:
        return count(session)
    if session.get_bind().dialect.name != "postgresql":  # SQLite: this transaction holds the write lock
        return _count_and_keep(session, issue_id, part, count)

    done, value = under_share_lock(
        session, TABLES[part], lambda own: _count_and_keep(own, issue_id, part, count)
    )
    return value if done else count(session)


def _count_and_keep(session: Session, issue_id: int, part: str, count: Callable[[Session], Any]) -> Any:
    """Count the part and keep it if the send is still over; where no write of what it counts can
    be under way (the caller's lock)."""
    value = count(session)
    if _keepable(session, issue_id):
        through = _newest(session, GROWING[part]) if part in GROWING else None
        _keep(session, issue_id, part, value, through)
    return value


def _grown_and_kept(session: Session, issue_id: int, part: str, grows: Grows) -> Any | None:
    """The rollup grown by the rows above its through_id, kept with the newest id as its new one
    (under the lock on PostgreSQL); None where it was dropped meanwhile or the lock was not had."""

    def grow(own: Session) -> Any | None:
        kept = own.get(IssueRollup, (issue_id, part), populate_existing=True)
        if kept is None or kept.through_id is None:
            return None
        through = _newest(own, GROWING[part])
        grown = grows(own, issue_id, json.loads(kept.figures), kept.through_id)
        if grown is None:
            return None
        own.execute(
            update(IssueRollup)
            .where(
                IssueRollup.issue_id == issue_id,
                IssueRollup.part == part,
                IssueRollup.through_id == kept.through_id,
            )
            .values(figures=json.dumps(grown[0]), through_id=through, computed_at=utcnow())
        )
        return grown[0]

    if session.get_bind().dialect.name != "postgresql":
        return grow(session)
    done, value = under_share_lock(session, TABLES[part], grow)
    return value if done else None


def _newest(session: Session, table: str) -> int:
    """The highest row id of `table` (0 when empty): one step down its primary key."""
    return session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one()  # noqa: S608


T = TypeVar("T")
LOCK_WAIT = "2s"  # a write under way ends in milliseconds; longer, and the figures are counted live
_GAVE_UP = {"55P03", "40P01"}  # lock_not_available, deadlock_detected


def under_share_lock(
    session: Session, tables: tuple[str, ...], work: Callable[[Session], T]
) -> tuple[bool, T | None]:
    """PostgreSQL: `work(own)` in a transaction of its own that first takes a SHARE lock on `tables`
    (it waits for the writes under way, and holds new ones off until it commits): (True, result).
    (False, None) when the lock cannot be had at once, as when the caller's own transaction writes
    to those tables (it would wait for the caller, who waits for it): the caller counts live."""
    with Session(session.get_bind().engine) as own:  # its own connection (the caller's may be one)
        try:
            own.execute(text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
            own.execute(text("SET LOCAL jit = off"))  # compiling these plans costs more than running them
            own.execute(text(f"LOCK TABLE {', '.join(tables)} IN SHARE MODE"))
            result = work(own)
            own.commit()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) not in _GAVE_UP:
                raise
            own.rollback()
            return False, None
    return True, result


def _keepable(session: Session, issue_id: int) -> bool:
    """Whether the send is still over, read after the lock (a retry under way has been waited for)."""
    status = session.execute(text("SELECT status FROM issue WHERE id = :id"), {"id": issue_id}).scalar()
    return status in SETTLED


def _keep(session: Session, issue_id: int, part: str, value: Any, through: int | None) -> None:
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    row = {
        "issue_id": issue_id,
        "part": part,
        "figures": json.dumps(value),
        "through_id": through,
        "computed_at": utcnow(),
    }
    session.execute(insert(IssueRollup).values(**row).on_conflict_do_nothing())  # another view made it


def forget(session: Session, issue_id: int | None = None) -> int:
    """Drop rollups (of one issue, or all): never needed for exactness, a way to time the queries."""
    query = delete(IssueRollup)
    if issue_id is not None:
        query = query.where(IssueRollup.issue_id == issue_id)
    return session.execute(query).rowcount or 0
