"""Importing and exporting the subscriber list as CSV.

An import is checked as a whole first: every invalid row is reported with its line number and nothing
is stored unless the whole file is valid (or the editor passes `--skip-invalid`). Rows are written in
bulk, so 100,000 rows take seconds, not minutes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, col, select

from newsletter.erasure import erased_check
from newsletter.headers import HeaderValueError, normalise_email
from newsletter.locations import input_file_problem
from newsletter.models import Subscriber, SubscriberEvent, SubscriberStatus, utcnow
from newsletter.subscriptions import owner_may_activate

MAX_CSV_BYTES = 200 * 1024 * 1024
EXPORT_COLUMNS = (
    "email",
    "status",
    "subscribed_at",
    "created_at",
    "unsubscribed_at",
    "paused_until",
    "source",
)
_CHUNK = 900  # stays under SQLite's bound-parameter limit in IN (...) lists


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CsvRefused(Exception):
    """The file cannot be imported; nothing was stored."""

    def __init__(self, path: Path, problems: list[RowProblem] | None = None, reason: str | None = None):
        self.problems = problems or []
        self.reason = reason or f"{len(self.problems)} invalid row(s)"
        super().__init__(f"{path}: {self.reason}")


@dataclass
class CsvImportReport:
    rows: int = 0
    added: list[tuple[int, str]] = field(default_factory=list)  # (id, email) of new readers
    activated: int = 0
    already: int = 0
    duplicates: int = 0
    not_reactivated: list[str] = field(default_factory=list)
    erased: int = 0
    skipped: list[RowProblem] = field(default_factory=list)
    to_confirm: list[tuple[int, str]] = field(default_factory=list)  # (id, email) still owed a confirmation


def read_addresses(path: Path) -> tuple[list[tuple[int, str]], list[RowProblem], int]:
    """(line, normalised address) for every valid row, the problems, and how many rows repeated one."""
    if problem := input_file_problem(path):  # a directory, a device or a pipe is refused before reading
        raise CsvRefused(path, reason=problem)
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise CsvRefused(path, reason=f"the file is larger than {MAX_CSV_BYTES:,} bytes")
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise CsvRefused(path, reason=f"cannot read: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise CsvRefused(path, reason="the file is empty") from None
        except UnicodeDecodeError:
            raise CsvRefused(path, reason=_undecodable(path)) from None
        except csv.Error as exc:
            raise CsvRefused(path, reason=f"not a readable UTF-8 CSV file: {exc}") from exc
        names = [name.strip().lower() for name in header]
        if "email" not in names:
            raise CsvRefused(path, reason="no 'email' column in the header line")
        column = names.index("email")
        seen: set[str] = set()
        valid: list[tuple[int, str]] = []
        problems: list[RowProblem] = []
        duplicates = 0
        try:
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                raw = row[column] if column < len(row) else ""
                try:
                    email = normalise_email(raw)
                except HeaderValueError as exc:
                    problems.append(RowProblem(line, f"{raw[:80]!r}: {exc}"))
                    continue
                if email in seen:
                    duplicates += 1
                    continue
                seen.add(email)
                valid.append((line, email))
        except UnicodeDecodeError:
            raise CsvRefused(path, reason=_undecodable(path)) from None
        except csv.Error as exc:
            raise CsvRefused(path, reason=f"line {reader.line_num}: not readable CSV: {exc}") from exc
    return valid, problems, duplicates


def _undecodable(path: Path) -> str:
    """Which line of the file is not UTF-8 (an encoded surrogate, Latin-1 bytes), for the message."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                byte = line[exc.start]
                return f"line {number}: not readable UTF-8 text (byte 0x{byte:02x} at column {exc.start + 1})"
    return "not readable UTF-8 text"


def import_csv(
    session: Session, path: Path, *, key: bytes, confirm: bool, skip_invalid: bool, source: str = "import"
) -> CsvImportReport:
    """Add the file's readers in the caller's transaction: active (the owner vouches for their consent)
    or, with `confirm`, pending until they confirm. Readers who left or were erased stay out."""
    valid, problems, duplicates = read_addresses(path)
    if problems and not skip_invalid:
        raise CsvRefused(path, problems)
    report = CsvImportReport(
        rows=len(valid) + len(problems) + duplicates, duplicates=duplicates, skipped=problems
    )
    now = utcnow()
    existing = _existing(session, [email for _, email in valid])
    is_erased = erased_check(session, key)
    new: list[str] = []
    to_activate: list[Subscriber] = []
    pending_existing: list[Subscriber] = []
    for _, email in valid:
        subscriber = existing.get(email)
        was_erased = is_erased(email)
        if subscriber is None:
            if was_erased:
                report.erased += 1
            else:
                new.append(email)
        elif subscriber.status == SubscriberStatus.ACTIVE:
            report.already += 1
        elif subscriber.status != SubscriberStatus.PENDING:
            report.not_reactivated.append(email)
        elif was_erased:
            report.erased += 1  # asked again after erasure: only their own confirmation brings them back
        elif not confirm and owner_may_activate(subscriber, was_erased):
            to_activate.append(subscriber)
        else:
            report.already += 1
            pending_existing.append(subscriber)
    status = SubscriberStatus.PENDING if confirm else SubscriberStatus.ACTIVE
    if new:
        session.execute(
            insert(Subscriber),
            [
                {
                    "email": email,
                    "status": status,
                    "source": source,
                    "created_at": now,
                    "updated_at": now,
                    "requested_at": now if confirm else None,
                    "confirmed_at": None if confirm else now,
                }
                for email in new
            ],
        )
        report.added = list(_ids(session, new))
        detail = (
            "imported; waiting for confirmation" if confirm else "imported as active; the list owner vouches"
        )
        session.execute(
            insert(SubscriberEvent),
            [
                {
                    "subscriber_id": sid,
                    "kind": "subscribed" if not confirm else "signup_requested",
                    "source": source,
                    "detail": detail,
                    "at": now,
                }
                for sid, _ in report.added
            ],
        )
    for subscriber in to_activate:
        subscriber.status, subscriber.confirmed_at, subscriber.updated_at = SubscriberStatus.ACTIVE, now, now
        session.add(subscriber)
        session.add(
            SubscriberEvent(
                subscriber_id=subscriber.id,
                kind="confirmed",
                source=source,
                detail="activated by import; the list owner vouches",
                at=now,
            )
        )
    report.activated = len(to_activate)
    if confirm:
        owed = _without_confirmation_sent(session, pending_existing)
        report.to_confirm = list(report.added) + [(s.id, s.email) for s in owed]
    return report


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
            ]
        )
        count += 1
    return count


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""
