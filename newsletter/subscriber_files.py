"""Importing and exporting the subscriber list.

An import reads a CSV (or a platform's zip of them) in any format of `import_formats`, checks it as a
whole first (every invalid row is reported with its line number and nothing is stored unless the whole
file is valid, or the editor passes `--skip-invalid`), then plans what each row does to the store and,
unless it is a dry run, writes the plan in bulk: 100,000 rows take seconds, not minutes.

The plan never loses consent. A row the export marks as having left is stored `suppressed` with its
reason, and suppresses a reader already here unless they confirmed here themselves after the export
says they left. A reader who left here (or was erased) is never touched. A pending reader is made
active only when the export says they are subscribed and they never left; with `--confirm` nobody is
made active and every reader still owed one gets a confirmation email.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, insert
from sqlmodel import Session, col, select

from newsletter.export_files import FileRefused, Part, Row, RowProblem, read_export
from newsletter.import_formats import FORMATS, Kind
from newsletter.models import ErasedAddress, Subscriber, SubscriberEvent, SubscriberStatus, utcnow
from newsletter.subscriptions import CONFIRMATION_LINK, LEFT, email_hash, owner_may_activate

CsvRefused = FileRefused  # the name earlier releases used
EXPORT_COLUMNS = (
    "email",
    "status",
    "subscribed_at",
    "created_at",
    "unsubscribed_at",
    "paused_until",
    "source",
    "status_reason",
)
_CHUNK = 900  # stays under SQLite's bound-parameter limit in IN (...) lists
SUPPRESSED_EVENT = "suppressed"

# The outcomes an import reports, in the order it prints them.
ADD_ACTIVE = "add as active"
ADD_PENDING = "add as pending"
ADD_SUPPRESSED = "add as suppressed"
MAKE_ACTIVE = "make pending reader active"
SUPPRESS = "suppress reader already here"
KEEP_ACTIVE = "keep active: confirmed here after leaving"
ALREADY = "skip: already on the list"
LEFT_EARLIER = "skip: left earlier"
ERASED = "skip: erased at their request"
NOTHING = "skip: nothing to store"
MERGED = "merge: duplicate row"
INVALID = "invalid row"
OUTCOMES = (
    ADD_ACTIVE,
    ADD_PENDING,
    ADD_SUPPRESSED,
    MAKE_ACTIVE,
    SUPPRESS,
    KEEP_ACTIVE,
    ALREADY,
    LEFT_EARLIER,
    ERASED,
    NOTHING,
    MERGED,
    INVALID,
)


@dataclass
class ImportReport:
    rows: int = 0
    parts: list[Part] = field(default_factory=list)  # the file, or each member of its zip, with its format
    ignored: list[str] = field(default_factory=list)  # zip members that are no subscriber export
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (outcome, reason) -> rows
    added: list[tuple[int, str]] = field(default_factory=list)  # (id, email) of new readers, not suppressed
    activated: int = 0
    already: int = 0
    duplicates: int = 0
    suppressed: int = 0  # new and existing readers stored as suppressed
    not_reactivated: list[str] = field(default_factory=list)
    erased: int = 0
    skipped: list[RowProblem] = field(default_factory=list)
    to_confirm: list[tuple[int, str]] = field(default_factory=list)  # (id, email) still owed a confirmation
    dry_run: bool = False

    def count(self, outcome: str, reason: str = "") -> None:
        self.outcomes[(outcome, reason)] += 1

    def table(self) -> list[tuple[str, str, int]]:
        """(outcome, reason, rows) in the order of OUTCOMES, then by reason."""
        order = {outcome: position for position, outcome in enumerate(OUTCOMES)}
        return [
            (outcome, reason, count)
            for (outcome, reason), count in sorted(
                self.outcomes.items(), key=lambda i: (order[i[0][0]], i[0][1])
            )
        ]


@dataclass
class _Plan:
    new: list[Row] = field(default_factory=list)
    activate: list[tuple[Subscriber, Row]] = field(default_factory=list)
    suppress: list[tuple[Subscriber, Row]] = field(default_factory=list)
    pending: list[Subscriber] = field(default_factory=list)


def import_file(
    session: Session,
    path: Path,
    *,
    key: bytes,
    confirm: bool,
    skip_invalid: bool,
    wanted: str = "auto",
    dry_run: bool = False,
    now: datetime | None = None,
) -> ImportReport:
    """Import `path` in the caller's transaction (nothing is written on a dry run). Raises FileRefused."""
    now = now or utcnow()
    read = read_export(path, wanted, now)
    if read.problems and not skip_invalid:
        raise FileRefused(path, read.problems)
    report = ImportReport(
        rows=read.total,
        parts=read.parts,
        ignored=read.ignored,
        duplicates=read.duplicates,
        skipped=read.problems,
        dry_run=dry_run,
    )
    if read.duplicates:
        report.outcomes[(MERGED, "")] = read.duplicates
    if read.problems:
        report.outcomes[(INVALID, "")] = len(read.problems)
    plan = _plan(session, read.rows, report, key=key, confirm=confirm)
    if not dry_run:
        _apply(session, plan, report, confirm=confirm, now=now)
    return report


def import_csv(
    session: Session, path: Path, *, key: bytes, confirm: bool, skip_invalid: bool, wanted: str = "auto"
) -> ImportReport:
    """`import_file` under the name earlier releases used."""
    return import_file(session, path, key=key, confirm=confirm, skip_invalid=skip_invalid, wanted=wanted)


def _plan(session: Session, rows: list[Row], report: ImportReport, *, key: bytes, confirm: bool) -> _Plan:
    """What each row does to the store; counts every outcome in `report`. Reads, never writes."""
    plan = _Plan()
    existing = _existing(session, [row.email for row in rows if row.verdict.kind != Kind.SKIP])
    erased = set(session.exec(select(ErasedAddress.email_hash)))
    leaving = {row.email for row in rows if row.verdict.kind == Kind.SUPPRESSED}
    own = _own_confirmations(
        session, [s for e, s in existing.items() if e in leaving and s.status == SubscriberStatus.ACTIVE]
    )
    for row in rows:
        kind, reason = row.verdict.kind, row.verdict.reason
        if kind == Kind.SKIP:
            report.count(NOTHING, reason)
            continue
        subscriber = existing.get(row.email)
        was_erased = bool(erased) and email_hash(key, row.email) in erased
        if subscriber is None:
            if was_erased:
                report.erased += 1
                report.count(ERASED)
            else:
                plan.new.append(row)
                outcome = {Kind.ACTIVE: ADD_ACTIVE, Kind.PENDING: ADD_PENDING}.get(kind, ADD_SUPPRESSED)
                report.count(ADD_PENDING if confirm and kind == Kind.ACTIVE else outcome, reason)
        elif subscriber.status in LEFT or subscriber.status == SubscriberStatus.ERASED:
            report.not_reactivated.append(row.email)
            report.count(LEFT_EARLIER, subscriber.status)
        elif kind == Kind.SUPPRESSED:
            left, confirmed = row.verdict.left_at, own.get(subscriber.id)
            if left is not None and confirmed is not None and confirmed > left:
                report.already += 1
                report.count(KEEP_ACTIVE, reason)
            else:
                plan.suppress.append((subscriber, row))
                report.count(SUPPRESS, f"{reason}; was {subscriber.status}")
        elif subscriber.status == SubscriberStatus.ACTIVE:
            report.already += 1
            report.count(ALREADY, subscriber.status)
        elif was_erased:
            report.erased += 1  # asked again after erasure: only their own confirmation brings them back
            report.count(ERASED)
        elif kind == Kind.ACTIVE and not confirm and owner_may_activate(subscriber, was_erased):
            plan.activate.append((subscriber, row))
            report.count(MAKE_ACTIVE, reason)
        else:
            report.already += 1
            report.count(ALREADY, subscriber.status)
            plan.pending.append(subscriber)
    report.activated = len(plan.activate)
    report.suppressed = len(plan.suppress) + sum(1 for row in plan.new if row.verdict.kind == Kind.SUPPRESSED)
    return plan


def _own_confirmations(session: Session, readers: list[Subscriber]) -> dict[int, datetime]:
    """When each reader last confirmed their address here themselves (their own link)."""
    found: dict[int, datetime] = {}
    ids = [s.id for s in readers]
    for start in range(0, len(ids), _CHUNK):
        query = (
            select(SubscriberEvent.subscriber_id, func.max(SubscriberEvent.at))
            .where(
                col(SubscriberEvent.subscriber_id).in_(ids[start : start + _CHUNK]),
                SubscriberEvent.kind == "confirmed",
                SubscriberEvent.source == CONFIRMATION_LINK,
            )
            .group_by(SubscriberEvent.subscriber_id)
        )
        found.update({sid: at for sid, at in session.exec(query) if at is not None})
    return found


def _reason(row: Row) -> str:
    return f"imported: {row.platform} {row.verdict.reason}"[:80]


def _source(row: Row) -> str:
    return f"import:{row.platform}"


def _apply(session: Session, plan: _Plan, report: ImportReport, *, confirm: bool, now: datetime) -> None:
    """Write the plan in bulk, every change of state with its event."""
    table = Subscriber.__table__
    connection = session.connection()
    values, events = [], []
    for row in plan.new:
        verdict = row.verdict
        status = {Kind.ACTIVE: SubscriberStatus.ACTIVE, Kind.PENDING: SubscriberStatus.PENDING}.get(
            verdict.kind, SubscriberStatus.SUPPRESSED
        )
        if confirm and status == SubscriberStatus.ACTIVE:
            status = SubscriberStatus.PENDING
        active = status == SubscriberStatus.ACTIVE
        suppressed = status == SubscriberStatus.SUPPRESSED
        values.append(
            {
                "email": row.email,
                "status": status,
                "source": _source(row),
                "created_at": verdict.created_at or now,
                "updated_at": now,
                "requested_at": now if confirm and not suppressed else None,
                "confirmed_at": (verdict.confirmed_at or verdict.created_at or now) if active else None,
                "unsubscribed_at": (verdict.left_at or now) if suppressed else None,
                "status_reason": _reason(row) if suppressed else None,
                "tracking": True,
            }
        )
    if values:
        connection.execute(table.insert(), values)
        ids = dict((email, sid) for sid, email in _ids(session, [row.email for row in plan.new]))
        title = {name: f.title for name, f in FORMATS.items()}
        for row, value in zip(plan.new, values, strict=True):
            sid, status = ids[row.email], value["status"]
            origin = f"imported from {title[row.platform]} ({row.verdict.reason})"
            if status == SubscriberStatus.SUPPRESSED:
                kind, detail = SUPPRESSED_EVENT, f"{_reason(row)}; never active here"
            elif status == SubscriberStatus.ACTIVE:
                kind, detail = "subscribed", f"{origin} as active; the list owner vouches"
                report.added.append((sid, row.email))
            else:
                kind, detail = "signup_requested", f"{origin}; waiting for confirmation"
                report.added.append((sid, row.email))
            events.append(
                {"subscriber_id": sid, "kind": kind, "source": _source(row), "detail": detail, "at": now}
            )
    for subscriber, row in plan.activate:
        subscriber.status, subscriber.confirmed_at, subscriber.updated_at = SubscriberStatus.ACTIVE, now, now
        session.add(subscriber)
        events.append(
            {
                "subscriber_id": subscriber.id,
                "kind": "confirmed",
                "source": _source(row),
                "detail": f"activated by import ({row.verdict.reason}); the list owner vouches",
                "at": now,
            }
        )
    for subscriber, row in plan.suppress:
        was = subscriber.status
        subscriber.status, subscriber.status_reason = SubscriberStatus.SUPPRESSED, _reason(row)
        subscriber.unsubscribed_at, subscriber.updated_at = row.verdict.left_at or now, now
        session.add(subscriber)
        events.append(
            {
                "subscriber_id": subscriber.id,
                "kind": SUPPRESSED_EVENT,
                "source": _source(row),
                "detail": f"{_reason(row)}; was {was}",
                "at": now,
            }
        )
    session.flush()
    if events:  # through the session, so the webhook outbox sees them (one transaction)
        session.execute(insert(SubscriberEvent), events)
    if confirm:
        owed = _without_confirmation_sent(session, plan.pending)
        report.to_confirm = list(report.added) + [(s.id, s.email) for s in owed]


CONFIRMATION_SENT = "confirmation_sent"


def _without_confirmation_sent(session: Session, pending: list[Subscriber]) -> list[Subscriber]:
    """Pending readers whose confirmation never went out since they last asked: a rerun sends those."""
    owed = []
    for start in range(0, len(pending), _CHUNK):
        chunk = {s.id: s for s in pending[start : start + _CHUNK]}
        sent = {
            (row.subscriber_id, row.at)
            for row in session.exec(
                select(SubscriberEvent).where(
                    col(SubscriberEvent.subscriber_id).in_(list(chunk)),
                    SubscriberEvent.kind == CONFIRMATION_SENT,
                )
            )
        }
        for sid, subscriber in chunk.items():
            since = subscriber.requested_at or subscriber.created_at
            if not any(s == sid and at >= since for s, at in sent):
                owed.append(subscriber)
    return owed


def record_confirmations_sent(session: Session, subscriber_ids: list[int], source: str) -> None:
    now = utcnow()
    if subscriber_ids:
        session.execute(
            insert(SubscriberEvent),
            [
                {"subscriber_id": sid, "kind": CONFIRMATION_SENT, "source": source, "at": now}
                for sid in subscriber_ids
            ],
        )


def _existing(session: Session, emails: list[str]) -> dict[str, Subscriber]:
    found: dict[str, Subscriber] = {}
    for start in range(0, len(emails), _CHUNK):
        chunk = emails[start : start + _CHUNK]
        for subscriber in session.exec(select(Subscriber).where(col(Subscriber.email).in_(chunk))):
            found[subscriber.email] = subscriber
    return found


def _ids(session: Session, emails: list[str]) -> Iterator[tuple[int, str]]:
    for start in range(0, len(emails), _CHUNK):
        chunk = emails[start : start + _CHUNK]
        yield from session.exec(
            select(Subscriber.id, Subscriber.email).where(col(Subscriber.email).in_(chunk))
        )


def export_csv(session: Session, out: io.TextIOBase) -> int:
    """Write every reader with an address as CSV; returns how many rows. Erased readers have none."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    query = select(Subscriber).where(col(Subscriber.email).is_not(None)).order_by(Subscriber.id)
    for subscriber in session.exec(query.execution_options(yield_per=2000)):
        writer.writerow(
            [
                subscriber.email,
                subscriber.status,
                _iso(subscriber.confirmed_at),
                _iso(subscriber.created_at),
                _iso(subscriber.unsubscribed_at),
                _iso(subscriber.paused_until),
                subscriber.source,
                subscriber.status_reason or "",
            ]
        )
        count += 1
    return count


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
