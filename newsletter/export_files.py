"""Reading a subscriber file within bounds: a CSV, or a platform's zip of CSVs (Mailchimp, Substack).

Everything is checked before anything is built on it: the file's size, the number of rows and
columns, the header's length, the encoding (UTF-8, with or without a byte-order mark: anything else
is refused with its line number), NUL bytes, CSV quoting (strict) and, in a zip, the number and the
declared sizes of its members. Each row is read into a `Row` by its format (`import_formats`); a row
that cannot be read is a `RowProblem` with its file and line number.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO

from newsletter.headers import HeaderValueError, normalise_email
from newsletter.import_formats import (
    STRICTNESS,
    Format,
    HeaderRefused,
    Kind,
    RowError,
    Verdict,
    choose_format,
    mailchimp_file,
)
from newsletter.locations import input_file_problem

MAX_FILE_BYTES = 200 * 1024 * 1024  # the file, or the members of a zip taken together
MAX_ROWS = 2_000_000
MAX_COLUMNS = 500
MAX_COLUMN_NAME = 200
MAX_ZIP_MEMBERS = 1000  # entries in a zip, of any kind
MAX_ZIP_CSVS = 20  # CSV members read from a zip
MAX_LINE_BYTES = 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str
    part: str | None = None  # the zip member, when the file is a zip

    def __str__(self) -> str:
        where = f"{self.part} line {self.line}" if self.part else f"line {self.line}"
        return f"{where}: {self.reason}"


class FileRefused(Exception):
    """The file cannot be imported; nothing was stored."""

    def __init__(self, path: Path, problems: list[RowProblem] | None = None, reason: str | None = None):
        self.problems = problems or []
        self.reason = reason or f"{len(self.problems)} invalid row(s)"
        super().__init__(f"{path}: {self.reason}")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    email: str
    verdict: Verdict
    platform: str  # the format's name: "mailchimp"
    part: str | None = None


@dataclass
class Part:
    """One CSV read: the file itself, or a member of a zip."""

    name: str | None
    format: Format
    detail: str  # "cleaned members" for Mailchimp's files, "" otherwise
    rows: int = 0


@dataclass
class ReadResult:
    rows: list[Row] = field(default_factory=list)  # one per address, the strictest row kept
    problems: list[RowProblem] = field(default_factory=list)
    duplicates: int = 0
    parts: list[Part] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # zip members that are no subscriber list
    total: int = 0  # data rows read, blank lines not counted


def read_export(path: Path, wanted: str, now: datetime) -> ReadResult:
    """Every row of `path` in the format `wanted` (`auto`: recognised from each header)."""
    if problem := input_file_problem(path):  # a directory, a device or a pipe is refused before reading
        raise FileRefused(path, reason=problem)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FileRefused(path, reason=f"the file is larger than {MAX_FILE_BYTES:,} bytes")
        with path.open("rb") as probe:
            is_zip = probe.read(4) == ZIP_MAGIC
    except OSError as exc:
        raise FileRefused(path, reason=f"cannot read: {exc.strerror or exc}") from exc
    result = ReadResult()
    seen: dict[str, int] = {}
    with ExitStack() as stack:
        if is_zip:
            members = list(_zip_members(path, stack))
        else:
            members = [(None, stack.enter_context(path.open("rb")))]
        refusals: list[tuple[str, str]] = []
        for name, handle in members:
            lines = _lines(path, name, handle)
            header = _header(path, name, lines)
            try:
                chosen = choose_format(header, wanted)
                if name is not None and chosen.name == "csv" and wanted != "csv":
                    raise HeaderRefused(
                        "no platform's export (a plain CSV is read from a zip only with --from csv)"
                    )
            except HeaderRefused as refused:
                if name is None:
                    raise FileRefused(path, reason=f"line 1: {refused}") from None
                result.ignored.append(name)
                refusals.append((name, str(refused)))
                continue
            part = Part(name, chosen, _detail(chosen, header, name or path.name))
            result.parts.append(part)
            _read_rows(path, part, header, lines, now, result, seen)
        if not result.parts:
            reasons: dict[str, list[str]] = {}
            for name, reason in refusals:
                reasons.setdefault(reason, []).append(name)
            said = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in reasons.items())
            raise FileRefused(path, reason=f"no CSV file in the zip is a subscriber export ({said})")
    return result


def _zip_members(path: Path, stack: ExitStack) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FileRefused(path, reason=f"not a readable zip file: {exc}") from None
    if len(entries) > MAX_ZIP_MEMBERS:
        raise FileRefused(path, reason=f"the zip holds more than {MAX_ZIP_MEMBERS} entries")
    csvs = [
        e
        for e in entries
        if not e.is_dir() and e.filename.lower().endswith(".csv") and not e.filename.startswith("__MACOSX/")
    ]
    if len(csvs) > MAX_ZIP_CSVS:
        raise FileRefused(path, reason=f"the zip holds more than {MAX_ZIP_CSVS} CSV files")
    if sum(e.file_size for e in csvs) > MAX_FILE_BYTES:
        raise FileRefused(
            path, reason=f"the zip's CSV files hold more than {MAX_FILE_BYTES:,} bytes unpacked"
        )
    for entry in sorted(csvs, key=lambda e: e.filename):
        if entry.flag_bits & 0x1:
            raise FileRefused(path, reason=f"{entry.filename}: encrypted; export it again without a password")
        try:
            # A member is read no further than its declared size (zipfile stops there and checks its CRC).
            yield entry.filename, stack.enter_context(archive.open(entry))
        except (zipfile.BadZipFile, NotImplementedError, OSError) as exc:
            raise FileRefused(path, reason=f"{entry.filename}: cannot unpack: {exc}") from None


def _where(name: str | None, line: int) -> str:
    return f"{name} line {line}" if name else f"line {line}"


def _lines(path: Path, name: str | None, handle: IO[bytes]) -> Iterator[str]:
    """The file's lines as text, each checked: a line number for every encoding or NUL problem."""
    number = 0
    try:
        while raw := handle.readline(MAX_LINE_BYTES + 1):  # a line is never read past its bound
            number += 1
            if number == 1:
                if raw.startswith(UTF16_BOMS):
                    raise FileRefused(path, reason=f"{_where(name, 1)}: the file is UTF-16; save it as UTF-8")
                raw = raw.removeprefix(UTF8_BOM)
            if len(raw) > MAX_LINE_BYTES:
                raise FileRefused(
                    path, reason=f"{_where(name, number)}: longer than {MAX_LINE_BYTES:,} bytes"
                )
            if b"\x00" in raw:
                raise FileRefused(path, reason=f"{_where(name, number)}: holds a NUL byte; is it a CSV file?")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FileRefused(
                    path,
                    reason=f"{_where(name, number)}: not UTF-8 (byte 0x{raw[exc.start]:02x} at position "
                    f"{exc.start + 1}); save the file as UTF-8",
                ) from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise FileRefused(path, reason=f"{_where(name, number + 1)}: cannot read: {exc}") from None


def _header(path: Path, name: str | None, lines: Iterator[str]) -> list[str]:
    try:
        header = next(csv.reader([next(lines)], strict=True))
    except StopIteration:
        raise FileRefused(path, reason=f"{name + ': ' if name else ''}the file is empty") from None
    except csv.Error as exc:
        raise FileRefused(path, reason=f"{_where(name, 1)}: not readable CSV: {exc}") from None
    if len(header) > MAX_COLUMNS:
        raise FileRefused(path, reason=f"{_where(name, 1)}: more than {MAX_COLUMNS} columns")
    if any(len(column) > MAX_COLUMN_NAME for column in header):
        raise FileRefused(path, reason=f"{_where(name, 1)}: a column name is longer than {MAX_COLUMN_NAME}")
    return [column.strip().lower() for column in header]


def _detail(chosen: Format, header: list[str], name: str | None) -> str:
    if chosen.name != "mailchimp":
        return ""
    if name and PurePosixPath(name).name.lower().startswith(("nonsubscribed", "non_subscribed")):
        return "non-subscribed contacts"
    return f"{mailchimp_file(header)} members"


def _read_rows(
    path: Path,
    part: Part,
    header: list[str],
    lines: Iterator[str],
    now: datetime,
    result: ReadResult,
    seen: dict[str, int],
) -> None:
    """Read the rows after the header into `result`; one row per address, the strictest kept."""
    columns = frozenset(header)
    index = {column: position for position, column in reversed(list(enumerate(header)))}
    email_at = index[part.format.email_column(header)]
    read = part.format.read
    platform = part.format.name
    plain = Verdict(Kind.ACTIVE, "listed") if platform == "csv" else None  # no status to read
    if part.detail == "non-subscribed contacts":  # never opted in: nothing to store
        plain = Verdict(Kind.SKIP, "non-subscribed contact")
    reader = csv.reader(lines, strict=True)
    rows, problems = result.rows, result.problems
    try:
        for cells in reader:
            line = reader.line_num + 1  # the header line was read before this reader started
            if not any(cells) or not any(cell.strip() for cell in cells):
                continue
            result.total += 1
            part.rows += 1
            if result.total > MAX_ROWS:
                raise FileRefused(path, reason=f"more than {MAX_ROWS:,} rows")
            raw = cells[email_at] if email_at < len(cells) else ""
            try:
                email = normalise_email(raw)
            except HeaderValueError as exc:
                problems.append(RowProblem(line, f"{raw[:80]!r}: {exc}", part.name))
                continue
            if plain is not None:
                verdict = plain
            else:
                try:
                    verdict = read(_cells(cells, index), columns, now)
                except RowError as exc:
                    problems.append(RowProblem(line, f"{email}: {exc}", part.name))
                    continue
            earlier = seen.get(email)
            if earlier is None:
                seen[email] = len(rows)
                rows.append(Row(line, email, verdict, platform, part.name))
                continue
            result.duplicates += 1
            if STRICTNESS[verdict.kind] < STRICTNESS[rows[earlier].verdict.kind]:
                rows[earlier] = Row(line, email, verdict, platform, part.name)
    except csv.Error as exc:
        where = _where(part.name, reader.line_num + 1)  # the line the reader stopped on
        raise FileRefused(path, reason=f"{where}: not readable CSV: {exc}") from None


def _cells(cells: list[str], index: dict[str, int]):
    width = len(cells)

    def get(column: str) -> str:
        position = index.get(column)
        return cells[position] if position is not None and position < width else ""

    return get
