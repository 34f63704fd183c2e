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
So an issue whose hits still flow in is counted afresh, as before; one that has settled is read in
a few milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import delete, text
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


def figures(
    session: Session, issue_id: int, part: str, count: Callable[[Session], Any], *, settled: bool
) -> Any:
    """The part's figures for the issue: its rollup if there is one, else `count(session)`, kept as
    a rollup when the issue's send is over (`settled`: its status is in SETTLED). While it is being
    sent everything moves: counted live, and no lock is taken. `count` returns plain JSON data."""
    found = session.get(IssueRollup, (issue_id, part))
    if found is not None:
        return json.loads(found.figures)
    if not settled:
        return count(session)
    if session.get_bind().dialect.name != "postgresql":  # SQLite: this transaction holds the write lock
        value = count(session)
        if _keepable(session, issue_id):
            _keep(session, issue_id, part, value, sqlite_insert)
        return value

    def count_and_keep(own: Session) -> Any:
        value = count(own)
        if _keepable(own, issue_id):
            _keep(own, issue_id, part, value, postgresql_insert)
        return value

    done, value = under_share_lock(session, TABLES[part], count_and_keep)
    return value if done else count(session)


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


def _keep(session: Session, issue_id: int, part: str, value: Any, insert) -> None:
    row = {"issue_id": issue_id, "part": part, "figures": json.dumps(value), "computed_at": utcnow()}
    statement = insert(IssueRollup).values(**row).on_conflict_do_nothing()  # another view made it
    session.execute(statement)


def forget(session: Session, issue_id: int | None = None) -> int:
    """Drop rollups (of one issue, or all): never needed for exactness, a way to time the queries."""
    query = delete(IssueRollup)
    if issue_id is not None:
        query = query.where(IssueRollup.issue_id == issue_id)
    return session.execute(query).rowcount or 0
