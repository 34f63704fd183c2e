"""What every command shares: the consoles, the one-line refusal, settings, the store, the week."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import DBAPIError

    from newsletter.config import Settings
    from newsletter.plain_store import PlainReader, StoreUnreachable
    from newsletter.quality import Report as QualityReport
    from newsletter.views import IssueView
    from newsletter.weeks import Week

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

WeekOption = Annotated[
    str | None, typer.Option("--week", "-w", help="ISO week like 2026-W48; default: this week.")
]
WEEK_YEARS = range(1970, 3000)  # weeks outside these years are typos (and 9999-W52 ends in year 10000)
MAX_SHOWN_CHARS = 80  # an argument quoted in a message is cut to this
DEBUG_VARIABLE = "NEWSLETTER_DEBUG"
loaded_settings: list[Settings] = []  # the settings this process read: secrets masked in any report


def fail(message: str) -> NoReturn:
    """Refuse: one line on stderr (never wrapped, never read as Rich markup), exit 1."""
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def shown(text: str) -> str:
    """An argument quoted in a message: repr, cut to MAX_SHOWN_CHARS."""
    return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "...")


def unreachable(store: str, exc: DBAPIError | StoreUnreachable) -> NoReturn:
    """A database that cannot be reached, opened or read, through SQLAlchemy (a DBAPIError) or the
    driver alone (newsletter.plain_store): the driver's first line says why, never a traceback (the
    driver's text names host and user at most, never the password)."""
    from newsletter.plain_store import StoreUnreachable, first_line

    if isinstance(exc, StoreUnreachable):
        verb, detail = exc.verb, exc.detail
    else:
        verb = "open" if "sqlite" in type(exc.orig).__module__ else "reach"
        detail = first_line(exc.orig or exc)
    fail(f"cannot {verb} {store}: {detail}")


# The services' expected refusals, by module: each is one line and exit 1, never a traceback.
REFUSALS = {
    "newsletter.config": "ConfigError",
    "newsletter.issue_reads": "EditionError",  # newsletter.editions's too (one class)
    "newsletter.render": "RenderError",
    "newsletter.headers": "HeaderValueError",
    "newsletter.schema": "SchemaError",
}


def _loaded_types(names: dict[str, str]) -> tuple[type[BaseException], ...]:
    """The exception classes of the modules this process has imported: one from a module that was
    never loaded cannot have been raised, so a command pays only for the modules it used."""
    return tuple(
        getattr(sys.modules[module], name) for module, name in names.items() if module in sys.modules
    )


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the services' expected refusals into a message and exit code 1, never a traceback."""
    try:
        yield
    except Exception as exc:
        failed = _loaded_types({"newsletter.importing": "ImportFailed"})
        if failed and isinstance(exc, failed):
            errors.print(f"[bold red]import refused[/], nothing was stored ({len(exc.problems)} problem(s)):")
            for problem in exc.problems:
                errors.print(f"  {problem}", markup=False)
            raise typer.Exit(1) from None
        if isinstance(exc, _loaded_types(REFUSALS)):
            fail(str(exc))
        raise


def load_settings() -> Settings:
    """The settings, or one line per bad one (naming its variable, never quoting its value), exit 1."""
    from pydantic import ValidationError

    from newsletter.config import ConfigError, Settings, check_env_file

    try:
        check_env_file()
    except ConfigError as exc:
        fail(f"invalid configuration: {exc}")
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = [
            f"{_variable(error['loc'])}: {error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        if len(problems) == 1:
            fail(f"invalid configuration: {problems[0]}")
        fail(f"invalid configuration ({len(problems)} settings):\n  " + "\n  ".join(problems))
    loaded_settings.append(settings)
    try:
        settings.check_paths()
    except ConfigError as exc:
        fail(str(exc))
    return settings


def _variable(loc: tuple) -> str:
    """The environment variable behind a validation error's location (a field name or an alias)."""
    from newsletter.config import Settings

    key = str(loc[0]).lower() if loc else ""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        if key in (name, (alias or "").lower()):
            return alias or f"NEWSLETTER_{name.upper()}"
    return key.upper() or "NEWSLETTER_*"


def open_store(settings: Settings, *, create: bool = False) -> Engine:
    """The store, created or upgraded with `create`; otherwise it must exist at the newest schema.
    Looking never creates anything: a missing SQLite file is reported, not made."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError

    from newsletter import schema
    from newsletter.engines import make_engine
    from newsletter.schema import SchemaError

    shown_store = _checked_location(settings, create=create)
    engine = make_engine(settings.database_url)
    try:
        if create:
            from newsletter.db import create_schema  # the ORM and models: only to make a schema

            create_schema(engine)
        else:
            _require_newest(shown_store, inspect(engine).has_table("issue"), lambda: schema.current(engine))
    except DBAPIError as exc:
        unreachable(f"the store at {shown_store}", exc)
    except SchemaError as exc:
        fail(str(exc))
    return engine


@contextmanager
def read_store(settings: Settings) -> Iterator[PlainReader]:
    """The store at the newest schema, opened through its driver alone for a command that only reads
    (newsletter.plain_store: no SQLAlchemy to import); the same refusals as `open_store`."""
    from newsletter import schema
    from newsletter.plain_store import StoreUnreachable, open_plain

    shown_store = _checked_location(settings, create=False)

    def revision() -> str | None:
        if not reader.has_table(schema.VERSION_TABLE):
            return None
        return schema.revision_among([row.version_num for row in reader.plain_rows(schema.VERSION_QUERY, {})])

    try:
        with open_plain(settings.database_url) as reader:
            _require_newest(shown_store, reader.has_table("issue"), revision)
            yield reader
    except StoreUnreachable as exc:
        unreachable(f"the store at {shown_store}", exc)
    except schema.SchemaError as exc:
        fail(str(exc))


def _checked_location(settings: Settings, *, create: bool) -> str:
    """The store as shown in messages; refuses a SQLite file that cannot be, or (unless `create`)
    is not, there."""
    from newsletter.store_urls import shown_url, sqlite_location_problem, sqlite_path

    path = sqlite_path(settings.database_url)
    if path is not None:
        if problem := sqlite_location_problem(path):
            fail(f"NEWSLETTER_DATABASE_URL: {problem}")
        if not create and not path.exists():
            fail(f"no store at {path}; run `newsletter init` first")
    return shown_url(settings.database_url)


def _require_newest(shown_store: str, has_issue_table: bool, revision: Callable[[], str | None]) -> None:
    """Refuse a store that is empty, or at a schema revision other than this release's newest."""
    from newsletter import schema

    if not has_issue_table:
        fail(f"no store at {shown_store}; run `newsletter init` first")
    if (found := revision()) != schema.head():
        if found is not None and not schema.known(found):
            fail(schema.unknown_revision_message(found))
        fail(
            f"the store at {shown_store} is at schema revision {found or 'from before migrations'}, "
            f"this release needs {schema.head()}; run `newsletter db upgrade`"
        )


def parse_week(text: str | None, settings: Settings) -> Week:
    """--week as a Week, or a one-line refusal naming it (before the store is opened)."""
    from newsletter.weeks import Week

    if text is None:
        return Week.containing(datetime.now(UTC), settings.zone)
    if len(text) > 16:
        fail("--week: not an ISO week; write it like 2026-W48")
    try:
        week = Week.parse(text)
    except ValueError as exc:
        fail(f"--week: {exc}")
    if week.year not in WEEK_YEARS:
        fail(f"--week: {text!r} is out of range; weeks run from {WEEK_YEARS[0]}-W01 to {WEEK_YEARS[-1]}-W52")
    return week


def output_directory(option: str, path: Path) -> None:
    """Refuse an output directory that cannot be made or written (its parent is never created)."""
    from newsletter.locations import directory_problem

    if problem := directory_problem(path):
        fail(f"{option}: {problem}")


def write_failed(option: str, path: Path, exc: OSError) -> NoReturn:
    from newsletter.locations import shown_path

    fail(f"{option}: cannot write {shown_path(exc.filename or path)}: {exc.strerror or exc}")


class StdoutFailed(Exception):
    """Standard output refused what a command wrote (a full disk, a closed pipe)."""

    def __init__(self, exc: OSError):
        super().__init__(f"cannot write to standard output: {exc.strerror or exc}")


class GuardedStdout:
    """sys.stdout as `main` runs a command: a write or flush that fails raises StdoutFailed, which
    `main` turns into one line and exit 1, so output lost to a full disk is never exit 0."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise StdoutFailed(exc) from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutFailed(exc) from exc

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def silence_stdout() -> None:
    """After a failed write: later writes and the final flush go to /dev/null, so Python adds no
    "Exception ignored" of its own."""
    import os

    with suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.__stdout__.fileno())


def issue_or_pick_view(session, week: Week, settings: Settings) -> IssueView:
    """The week's issue as it stands, or the pick it would get; refused when there is neither."""
    from newsletter.preview import week_view

    view = week_view(session, week, settings)
    if view is None:
        fail(f"nothing to render for {week}: no issue and no comparison published that week")
    return view


def print_checks(checks: QualityReport, title: str) -> None:
    """The findings as a table, then one line: how many checks, what failed, the size."""
    from rich.table import Table

    from newsletter.quality import GATES
    from newsletter.render import GMAIL_CLIP_BYTES

    if checks.findings:
        table = Table(title=title, show_lines=False)
        for column in ("gate", "severity", "finding", "where"):
            table.add_column(column, overflow="fold")
        for finding in checks.findings:
            colour = "red" if finding.severity == "error" else "yellow"
            table.add_row(
                finding.gate,
                f"[{colour}]{finding.severity}[/]",
                escape(finding.message),
                escape(finding.where),
            )
        console.print(table)
    failed = sorted({f.gate for f in checks.errors})
    warned = len(checks.findings) - len(checks.errors)
    verdict = f"[red]failed: {', '.join(failed)}[/]" if failed else "[green]all pass[/]"
    console.print(
        f"{len(GATES)} checks: {verdict}; {warned} warning(s); HTML {checks.html_bytes / 1000:.1f} KB "
        f"of {GMAIL_CLIP_BYTES / 1000:.0f} KB."
    )


def configure_logging(settings: Settings) -> None:
    """Log lines on stderr for the long-running processes (scheduler, worker)."""
    import logging
    import sys

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("apscheduler").setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))
    logging.getLogger("httpx").setLevel(logging.WARNING)
