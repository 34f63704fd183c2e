"""The `newsletter` command line: a thin shell over the services, with clear errors and exit codes.

Exit codes: 0 done (or nothing to do), 1 refused (bad input, wrong state; the message says why),
2 usage error (Typer's own), 130 interrupted (Ctrl-C). A refusal is one line naming the input; any
exception nobody foresaw still becomes one line (`main`), never a traceback, never a secret.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import col, select

from newsletter import scheduling, schema
from newsletter import worker as sender_worker
from newsletter.config import ConfigError, Settings, secrets_in_environment
from newsletter.content import comparison_views, import_files
from newsletter.curation import Week
from newsletter.db import (
    create_schema,
    make_engine,
    parse_database_url,
    session_scope,
    shown_url,
    sqlite_location_problem,
    sqlite_path,
)
from newsletter.delivery import SendAborted, Sender, SendReport
from newsletter.editions import (
    ComposeOutcome,
    EditionError,
    approve,
    cancel,
    compose,
    issue_comparisons,
    issue_view,
    require_issue,
    set_overrides,
)
from newsletter.emulator import DEFAULT_TOKEN, Emulator, Faults, run
from newsletter.events.intake import issue_event_counts
from newsletter.headers import HeaderValueError, normalise_email
from newsletter.importing import ImportFailed
from newsletter.ledger import counts as ledger_counts
from newsletter.ledger import failure_reasons, retry_failed
from newsletter.locations import directory_problem, file_problem, input_file_problem
from newsletter.models import Comparison, DeliveryStatus, Issue, IssueStatus
from newsletter.notices import NoticeKind, Notices
from newsletter.preview import week_view, write_preview
from newsletter.providers import ProviderError, make_provider
from newsletter.quality import GATES, GateFailed, check_issue, check_view, enforce
from newsletter.quality import Report as QualityReport
from newsletter.redaction import redact
from newsletter.render import GMAIL_CLIP_BYTES, RenderError
from newsletter.samples import load_samples
from newsletter.schema import SchemaError
from newsletter.store_copy import CopyError, copy_store
from newsletter.subscriber_files import CsvRefused, export_csv, import_csv, record_confirmations_sent
from newsletter.subscriptions import add_active, count_by_status, paused_count, recent_event_counts
from newsletter.views import IssueView

app = typer.Typer(
    help="Weekly AI Tool Verdicts: pick, render and send the weekly issue.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
issue_app = typer.Typer(help="Compose, inspect, edit and send the week's issue.", no_args_is_help=True)
comparisons_app = typer.Typer(help="The comparisons in the store.", no_args_is_help=True)
subscribers_app = typer.Typer(help="The readers on the list.", no_args_is_help=True)
schedule_app = typer.Typer(help="The scheduler's jobs.", no_args_is_help=True)
db_app = typer.Typer(
    help="The store's schema, and moving the store to another database.", no_args_is_help=True
)
app.add_typer(issue_app, name="issue")
app.add_typer(comparisons_app, name="comparisons")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(schedule_app, name="schedule")
app.add_typer(db_app, name="db")

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

DEMO_READERS = ("ada@example.com", "grace@example.com", "linus@example.com", "margaret@example.com")
WeekOption = Annotated[
    str | None, typer.Option("--week", "-w", help="ISO week like 2026-W48; default: this week.")
]


WEEK_YEARS = range(1970, 3000)  # weeks outside these years are typos (and 9999-W52 ends in year 10000)
MAX_SHOWN_CHARS = 80  # an argument quoted in a message is cut to this
DEBUG_VARIABLE = "NEWSLETTER_DEBUG"
_loaded: list[Settings] = []  # the settings this process read: their secrets are masked in any report


def main(args: list[str] | None = None) -> None:
    """The `newsletter` command (`args` instead of the command line: `scheduler.py`). The commands
    refuse bad input with their own one-line messages; this is the backstop for the rest: an
    unexpected exception becomes one masked line and exit 1 (with NEWSLETTER_DEBUG=1, the
    traceback), Ctrl-C exits 130 without a word."""
    try:
        app(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if _debug_requested():
            raise
        errors.print(unexpected_line(exc), markup=False, soft_wrap=True)
        errors.print(f"Rerun with {DEBUG_VARIABLE}=1 to see the traceback.", markup=False, soft_wrap=True)
        raise SystemExit(1) from None


def unexpected_line(exc: BaseException) -> str:
    """`error: unexpected <Type>: <first line of its message>`, cut short, every known secret masked."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "(no message)"
    secrets = secrets_in_environment()
    for settings in _loaded:
        secrets |= settings.secret_values()
    message = redact(first, secrets)
    if len(message) > 300:
        message = message[:300] + "..."
    return f"error: unexpected {type(exc).__name__}: {message}"


def _debug_requested() -> bool:
    if _loaded:
        return _loaded[-1].debug
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


def fail(message: str) -> NoReturn:
    """Refuse: one line on stderr (never wrapped, never read as Rich markup), exit 1."""
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def shown(text: str) -> str:
    """An argument quoted in a message: repr, cut to MAX_SHOWN_CHARS."""
    return repr(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "...")


def unreachable(store: str, exc: DBAPIError) -> NoReturn:
    """A database that cannot be reached or opened: the driver's first line says why, never a
    traceback (the driver's text names host and user at most, never the password)."""
    verb = "open" if "sqlite" in type(exc.orig).__module__ else "reach"
    detail = str(exc.orig or exc).strip().splitlines()
    fail(f"cannot {verb} {store}: {detail[0] if detail else type(exc.orig).__name__}")


@contextmanager
def refusals() -> Iterator[None]:
    """Turn the services' expected refusals into a message and exit code 1, never a traceback."""
    try:
        yield
    except ImportFailed as exc:
        errors.print(f"[bold red]import refused[/], nothing was stored ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            errors.print(f"  {problem}", markup=False)
        raise typer.Exit(1) from None
    except (EditionError, ConfigError, RenderError, HeaderValueError, SchemaError) as exc:
        fail(str(exc))


def load_settings() -> Settings:
    """The settings, or one line per bad one (naming its variable, never quoting its value), exit 1."""
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
    _loaded.append(settings)
    try:
        settings.check_paths()
    except ConfigError as exc:
        fail(str(exc))
    return settings


def _variable(loc: tuple) -> str:
    """The environment variable behind a validation error's location (a field name or an alias)."""
    key = str(loc[0]).lower() if loc else ""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        if key in (name, (alias or "").lower()):
            return alias or f"NEWSLETTER_{name.upper()}"
    return key.upper() or "NEWSLETTER_*"


def open_store(settings: Settings, *, create: bool = False) -> Engine:
    """The store, created or upgraded with `create`; otherwise it must exist at the newest schema.
    Looking never creates anything: a missing SQLite file is reported, not made."""
    path = sqlite_path(settings.database_url)
    shown_store = shown_url(settings.database_url)
    if path is not None:
        if problem := sqlite_location_problem(path):
            fail(f"NEWSLETTER_DATABASE_URL: {problem}")
        if not create and not path.exists():
            fail(f"no store at {path}; run `newsletter init` first")
    engine = make_engine(settings.database_url)
    try:
        if create:
            create_schema(engine)
        elif not inspect(engine).has_table("issue"):
            fail(f"no store at {shown_store}; run `newsletter init` first")
        elif (revision := schema.current(engine)) != schema.head():
            if revision is not None and not schema.known(revision):
                fail(schema.unknown_revision_message(revision))
            fail(
                f"the store at {shown_store} is at schema revision {revision or 'from before migrations'}, "
                f"this release needs {schema.head()}; run `newsletter db upgrade`"
            )
    except DBAPIError as exc:
        unreachable(f"the store at {shown_store}", exc)
    except SchemaError as exc:
        fail(str(exc))
    return engine


def parse_week(text: str | None, settings: Settings) -> Week:
    """--week as a Week, or a one-line refusal naming it (before the store is opened)."""
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
    if problem := directory_problem(path):
        fail(f"{option}: {problem}")


def write_failed(option: str, path: Path, exc: OSError) -> NoReturn:
    fail(f"{option}: cannot write {exc.filename or path}: {exc.strerror or exc}")


@app.command()
def init(
    sample: Annotated[bool, typer.Option("--sample", help="Also load the sample comparisons.")] = False,
) -> None:
    """Create the store (safe to run again); with --sample, load the sample content into this week."""
    settings = load_settings()
    secret_made = not settings.secret_key and not settings.secret_file.exists()
    with refusals():
        settings.signing_key()
        try:
            engine = open_store(settings, create=True)
        except typer.Exit:  # refused: the key file made a moment ago goes too, as if init never ran
            if secret_made:
                settings.secret_file.unlink(missing_ok=True)
            raise
        console.print(f"Store ready at [bold]{escape(shown_url(settings.database_url))}[/]")
        if sample:
            with session_scope(engine) as session:
                summary = load_samples(session, settings.zone, datetime.now(UTC))
            console.print(
                f"Sample content: {len(summary.created)} new, {len(summary.updated)} updated comparisons, "
                f"dated into {Week.containing(datetime.now(UTC), settings.zone)}."
            )


@app.command("import")
def import_command(
    paths: Annotated[
        list[Path], typer.Argument(help="JSON or YAML files: one comparison or a list per file.")
    ],
) -> None:
    """Load comparisons; the same slug updates. Any invalid file refuses the whole run."""
    refuse_unreadable(paths)
    settings = load_settings()
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        summary = import_files(session, paths, settings.zone)
    console.print(
        f"Imported {summary.total} comparison(s): {len(summary.created)} new, {len(summary.updated)} updated."
    )


def refuse_unreadable(paths: list[Path]) -> None:
    """Refuse the run, naming each file, when any input file cannot be read (nothing is stored)."""
    problems = [f"{path}: {problem}" for path in paths if (problem := input_file_problem(path))]
    if len(problems) == 1:
        fail(f"{problems[0]}; nothing was imported")
    if problems:
        fail(f"{len(problems)} files cannot be read, nothing was imported: " + "; ".join(problems[:5]))


@comparisons_app.command("list")
def comparisons_list(
    week: WeekOption = None, all_weeks: Annotated[bool, typer.Option("--all")] = False
) -> None:
    """Comparisons of a week (default this week) with their derived figures."""
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with session_scope(engine) as session:
        query = select(Comparison).order_by(col(Comparison.published_at).desc())
        if not all_weeks:
            start, end = chosen.bounds(settings.zone)
            query = query.where(col(Comparison.published_at) >= start, col(Comparison.published_at) < end)
        views = comparison_views(session, list(session.exec(query)), settings.site_url)
    table = Table(title=("All comparisons" if all_weeks else f"Comparisons published in {chosen}"))
    for column in ("slug", "pin", "left panel", "right panel", "community", "split"):
        table.add_column(column)
    for view in views:
        table.add_row(
            view.slug,
            "yes" if view.pinned else "",
            f"{view.left.panel.label}",
            f"{view.right.panel.label}",
            f"{view.left.community.label} / {view.right.community.label}",
            f"{view.split:.2f}",
        )
    console.print(table if views else "No comparisons.")


@comparisons_app.command("pin")
def comparisons_pin(slug: str, unpin: Annotated[bool, typer.Option("--unpin")] = False) -> None:
    """Pin a comparison so the weekly pick puts it first (or --unpin it)."""
    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
        if comparison is None:
            fail(f"no comparison with slug {shown(slug)}")
        comparison.pinned = not unpin
        session.add(comparison)
    console.print(f"{slug} is {'no longer ' if unpin else ''}pinned.")


@issue_app.command("compose")
def issue_compose(week: WeekOption = None) -> None:
    """Pick the week's comparisons into its draft issue (created, or refreshed while still a draft)."""
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        result = compose(session, chosen, settings)
        titles = [c.title for c in result.picks]
        status = result.issue.status if result.issue else None
    if result.outcome == ComposeOutcome.EMPTY:
        console.print(f"Nothing to compose for {chosen}: no comparison published that week is free to pick.")
        raise typer.Exit(0 if status else 1)
    if result.outcome == ComposeOutcome.UNCHANGED:
        console.print(f"Issue {chosen} is {status}; its picks are fixed.")
    else:
        console.print(f"Issue {chosen} {result.outcome.value} as a draft with {len(titles)} comparison(s):")
    for index, title in enumerate(titles, 1):
        console.print(f"  {index}. {title}")


@issue_app.command("show")
def issue_show(week: WeekOption = None) -> None:
    """The issue's state, subject, preheader, picks and ledger."""
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        view = issue_view(session, issue, settings)
        counts = ledger_counts(session, issue.id)
    console.print(f"[bold]Issue {issue.week}[/] · {issue.status}")
    console.print(f"Subject:   {view.subject}{'  (edited)' if issue.subject_override else ''}", markup=False)
    console.print(
        f"Preheader: {view.preheader}{'  (edited)' if issue.preheader_override else ''}", markup=False
    )
    for index, comparison in enumerate(view.comparisons, 1):
        console.print(
            f"  {index}. {comparison.title}  "
            f"[{comparison.left.panel.label} / {comparison.right.panel.label}]",
            markup=False,
        )
    if counts:
        console.print(
            "Deliveries: " + ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
        )


@issue_app.command("edit")
def issue_edit(
    week: WeekOption = None,
    subject: Annotated[
        str | None, typer.Option(help="Replace the generated subject ('' restores it).")
    ] = None,
    preheader: Annotated[
        str | None, typer.Option(help="Replace the generated preheader ('' restores it).")
    ] = None,
    reset: Annotated[
        bool, typer.Option("--reset", help="Restore the generated subject and preheader.")
    ] = False,
) -> None:
    """Override the subject or preheader of a draft or approved issue."""
    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        set_overrides(session, issue, subject=subject, preheader=preheader, reset=reset)
        view = issue_view(session, issue, settings)
    console.print(f"Subject:   {view.subject}", markup=False)
    console.print(f"Preheader: {view.preheader}", markup=False)


@issue_app.command("approve")
def issue_approve(
    week: WeekOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Approve even though a quality check fails (the findings are shown)."),
    ] = False,
) -> None:
    """Approve the week's draft for the scheduled send, once it renders and passes the same quality
    checks as `issue send` (a failing check refuses it with its findings, unless --force)."""
    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        try:
            checks = approve(session, require_issue(session, chosen), settings, force=force)
        except GateFailed as exc:
            print_checks(exc.report, f"Quality checks of {chosen}")
            raise
        status = require_issue(session, chosen).status
    if checks.findings:
        print_checks(checks, f"Quality checks of {chosen}")
    if not checks.passed:
        errors.print(f"[bold yellow]--force:[/] approved despite {len(checks.errors)} failing check(s).")
    console.print(f"Issue {chosen} is {status}; the scheduler sends it at its next send run.")


@issue_app.command("cancel")
def issue_cancel(week: WeekOption = None) -> None:
    """Cancel the week's issue: a draft or approved one is never sent; a send that stopped part-way
    (no sender running) sends nobody else, and the readers still queued are suppressed."""
    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        was_sending = issue.status == IssueStatus.SENDING
        cancel(session, issue)
        counts = ledger_counts(session, issue.id) if was_sending else {}
    console.print(f"Issue {chosen} is cancelled.")
    if was_sending:
        console.print(
            f"  {counts.get(DeliveryStatus.SENT, 0)} reader(s) already had it; the rest will not get it "
            f"(suppressed {counts.get(DeliveryStatus.SUPPRESSED, 0)}, failed "
            f"{counts.get(DeliveryStatus.FAILED, 0)}). See `newsletter issue status`."
        )


@issue_app.command("send")
def issue_send(
    week: WeekOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Send even though a quality check fails (the findings are shown).")
    ] = False,
) -> None:
    """Send the week's issue to every active reader, once it passes the quality checks; a rerun sends
    nobody twice. A send that cannot start changes nothing; one that stops keeps its queue."""
    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals():
        with session_scope(engine) as session:
            issue = require_issue(session, chosen)
            issue_id = issue.id
            checks = check_issue(session, issue, settings) if issue.status != IssueStatus.SENT else None
        if checks is not None and checks.findings:
            print_checks(checks, f"Quality checks of {chosen}")
        if checks is not None:
            enforce(checks, chosen.label, force=force)
            if not checks.passed:
                errors.print(
                    f"[bold yellow]--force:[/] sending despite {len(checks.errors)} failing check(s)."
                )
        report = run_send(engine, settings, issue_id)
    print_send_report(report, settings)


@issue_app.command("check")
def issue_check(week: WeekOption = None) -> None:
    """Run the quality checks on the week's issue (or the pick it would get): size, links, images, head,
    preheader, text part, list headers, subject. Exit 1 when one fails."""
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        checks = check_view(_issue_or_pick_view(session, chosen, settings), settings)
    print_checks(checks, f"Quality checks of {chosen}")
    raise typer.Exit(0 if checks.passed else 1)


def print_checks(checks: QualityReport, title: str) -> None:
    """The findings as a table, then one line: how many checks, what failed, the size."""
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


@issue_app.command("retry")
def issue_retry(week: WeekOption = None) -> None:
    """Send again to the readers whose delivery failed (after the provider recovered)."""
    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals():
        with session_scope(engine) as session:
            issue = require_issue(session, chosen)
            if issue.status not in (IssueStatus.SENDING, IssueStatus.SENT):
                fail(f"issue {issue.week} is {issue.status}; only a sent issue has failures to retry")
            requeued = retry_failed(session, issue.id)
            issue_id = issue.id
        if not requeued:
            console.print(f"Issue {chosen}: no failed delivery to retry.")
            return
        console.print(f"Retrying {requeued} failed deliveries of {chosen}.")
        report = run_send(engine, settings, issue_id)
    print_send_report(report, settings)


@issue_app.command("status")
def issue_status(week: WeekOption = None) -> None:
    """The ledger and the provider events of a send: sent, failed by reason, suppressed, delivered,
    bounced, complained, opened, clicked."""
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        counts = ledger_counts(session, issue.id)
        reasons = failure_reasons(session, issue.id)
        events = issue_event_counts(session, issue.id)
    console.print(
        f"[bold]Issue {issue.week}[/] · {issue.status}"
        + (f" · sent at {issue.sent_at:%Y-%m-%d %H:%M} UTC" if issue.sent_at else "")
    )
    table = Table(show_header=True)
    table.add_column("ledger")
    table.add_column("rows", justify="right")
    for status in DeliveryStatus:
        table.add_row(status.value, str(counts.get(status, 0)))
    console.print(table)
    for reason, count in reasons:
        console.print(f"  failed: {count} × {reason}", markup=False)
    kinds = ("delivered", "bounced", "soft_bounced", "complained", "unsubscribed", "opened", "clicked")
    console.print("Provider events: " + ", ".join(f"{kind} {events.get(kind, 0)}" for kind in kinds))


def run_send(engine: Engine, settings: Settings, issue_id: int) -> SendReport:
    """A send with a progress bar on a terminal, plain log lines otherwise. Progress counts only the
    deliveries that really ended (sent, failed, suppressed); a send that stops says how far it got."""
    provider = make_provider(settings)
    sender = Sender(engine, settings, provider)

    async def go(on_progress) -> SendReport:
        try:
            return await sender.send(issue_id, on_progress=on_progress)
        finally:
            await provider.aclose()

    try:
        if sys.stderr.isatty():
            columns = (TextColumn("Sending"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with Progress(*columns, console=errors, transient=True) as progress:
                task = progress.add_task("send", total=None)
                return asyncio.run(go(lambda done, total: progress.update(task, completed=done, total=total)))
        last = [0.0, -1]

        def log(done: int, total: int) -> None:
            if done != last[1] and (done == total or time.monotonic() - last[0] >= 2):
                last[0], last[1] = time.monotonic(), done
                errors.print(f"{done} of {total} deliveries done", markup=False)

        return asyncio.run(go(log))
    except SendAborted as exc:
        done = exc.report
        how_far = (
            f" after {done.settled} of {done.owed} deliveries (sent {done.sent + done.recovered}, "
            f"failed {done.failed_total}, suppressed {done.suppressed_total})"
            if done is not None
            else ""
        )
        fail(
            f"the send stopped{how_far}: {exc}. Nothing was lost: the remaining readers are still queued; "
            "fix the cause and run `newsletter issue send` again (or `newsletter issue cancel` to send "
            "nobody else)."
        )


def print_send_report(report: SendReport, settings: Settings) -> None:
    if not (report.sent or report.failed_total or report.suppressed_total or report.reconciled):
        console.print(
            f"Issue {report.week}: nothing to send; {report.previously_sent} reader(s) already have it."
        )
        return
    console.print(
        f"Issue {report.week}: sent {report.sent} in {report.seconds:.2f} s ({report.rate:,.0f}/s) "
        f"through {settings.provider}; suppressed {report.suppressed_total}; failed {report.failed_total}; "
        f"{report.previously_sent} already had it"
        + (
            f"; {report.reconciled} confirmed with the provider after an interruption"
            if report.reconciled
            else ""
        )
        + (f"; {report.retries} batch retries" if report.retries else "")
        + "."
    )
    for reason, count in report.suppressed.most_common():
        console.print(f"  suppressed: {count} × {reason}", markup=False)
    for reason, count in report.failed.most_common():
        console.print(f"  failed: {count} × {reason}", markup=False)
    if report.failed_total:
        console.print("  Run `newsletter issue retry` once the cause is fixed.")


@app.command()
def render(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for issue.html, issue.txt and issue.eml.")
    ],
    week: WeekOption = None,
) -> None:
    """Write the week's issue as a preview reader would get it (the pick, if no issue exists yet)."""
    output_directory("--out", out)
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        view = _issue_or_pick_view(session, chosen, settings)
        try:
            written = write_preview(view, settings, out)
        except OSError as exc:
            write_failed("--out", out, exc)
    for path in written:
        console.print(f"wrote {path}")


def _issue_or_pick_view(session, week: Week, settings: Settings) -> IssueView:
    view = week_view(session, week, settings)
    if view is None:
        fail(f"nothing to render for {week}: no issue and no comparison published that week")
    return view


@subscribers_app.command("add")
def subscribers_add(
    emails: Annotated[list[str], typer.Argument(help="Addresses whose consent you vouch for.")],
) -> None:
    """Add readers as active (the list owner vouches for their consent)."""
    refuse_bad_addresses(emails)
    settings = load_settings()
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        result = add_active(session, emails, source="cli", key=settings.signing_key())
    console.print(f"Added {len(result.added)}; already active {len(result.already)}.")
    if result.not_reactivated:
        console.print(
            "Not reactivated (they left; only they can come back, by confirming their address): "
            + ", ".join(result.not_reactivated),
            markup=False,
        )
    if result.erased:
        console.print(
            "Not added (erased at their request; only they can come back, by confirming their address): "
            + ", ".join(result.erased),
            markup=False,
        )


def refuse_bad_addresses(emails: list[str]) -> None:
    """Refuse the whole command, naming each argument that is not an address: nobody is added."""
    problems = []
    for position, raw in enumerate(emails, 1):
        try:
            normalise_email(raw)
        except HeaderValueError as exc:
            problems.append(f"argument {position} {shown(raw)}: {exc}")
    if len(problems) == 1:
        fail(f"{problems[0]}; nobody was added")
    if problems:
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        fail(
            f"{len(problems)} arguments are not email addresses, nobody was added: "
            + "; ".join(problems[:3])
            + more
        )


@subscribers_app.command("import")
def subscribers_import(
    path: Annotated[Path, typer.Argument(help="CSV with an 'email' column; other columns are ignored.")],
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Add as pending and email each a confirmation.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows, report the rest.")
    ] = False,
) -> None:
    """Import a list: rows become active (you vouch for their consent) or pending with --confirm.

    Readers who unsubscribed, bounced, complained or were erased are never added back."""
    settings = load_settings()
    engine = open_store(settings)
    try:
        with session_scope(engine) as session:
            report = import_csv(
                session, path, key=settings.signing_key(), confirm=confirm, skip_invalid=skip_invalid
            )
    except CsvRefused as refused:
        errors.print(
            f"[bold red]import refused[/], nothing was stored: {escape(str(refused))}", soft_wrap=True
        )
        for problem in refused.problems[:50]:
            errors.print(f"  {path}: {problem}", markup=False)
        if len(refused.problems) > 50:
            errors.print(f"  ... and {len(refused.problems) - 50} more")
        if refused.problems:
            errors.print("Fix those rows, or pass --skip-invalid to import the valid ones.")
        raise typer.Exit(1) from None
    state = "pending (confirmation emails follow)" if confirm else "active"
    console.print(
        f"{report.rows} row(s): {len(report.added)} added as {state}, "
        f"{report.activated} pending made active, {report.already} already on the list, "
        f"{report.duplicates} duplicate row(s) merged."
    )
    if report.not_reactivated:
        console.print(f"{len(report.not_reactivated)} left earlier and were not reactivated.")
    if report.erased:
        console.print(f"{report.erased} were erased at their request and were not added.")
    if report.skipped:
        console.print(f"{len(report.skipped)} invalid row(s) skipped:")
        for problem in report.skipped[:50]:
            console.print(f"  {problem}", markup=False)
    if confirm and report.to_confirm:
        try:
            with refusals():
                sent = asyncio.run(send_confirmations(settings, engine, report.to_confirm))
        except ProviderError as exc:
            fail(
                f"the readers are stored as pending, but the confirmation emails stopped: {exc}; once that "
                "is fixed, run the same import again: it sends only the confirmations still owed"
            )
        console.print(f"Sent {sent} confirmation email(s) through {settings.provider}.")


async def send_confirmations(settings: Settings, engine: Engine, readers: list[tuple[int, str]]) -> int:
    """Confirmation emails in provider-sized batches; each batch is recorded once the provider took it."""
    notices = Notices(settings)
    provider = make_provider(settings)
    sent = 0
    try:
        for start in range(0, len(readers), provider.max_batch):
            batch = readers[start : start + provider.max_batch]
            messages = [notices.message(NoticeKind.CONFIRM, subscriber_id=i, email=e) for i, e in batch]
            results = await provider.send_batch(messages)
            accepted = [sid for (sid, _), result in zip(batch, results, strict=True) if result.accepted]
            with session_scope(engine) as session:
                record_confirmations_sent(session, accepted, "import")
            sent += len(accepted)
    finally:
        await provider.aclose()
    return sent


@subscribers_app.command("export")
def subscribers_export(
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="CSV file to write; default: standard output.")
    ] = None,
) -> None:
    """Every reader with an address as CSV: email, status, subscribed_at and more."""
    if out is not None and (problem := file_problem(out)):
        fail(f"--out: {problem}")
    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        if out is None:
            export_csv(session, sys.stdout)
            return
        count = write_export(session, out)
    errors.print(f"wrote {count} reader(s) to {out}", markup=False)


def write_export(session, out: Path) -> int:
    """The export into `out` whole or not at all: a temporary file beside it, renamed when complete."""
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            count = export_csv(session, handle)
        os.replace(temporary, out)
    except OSError as exc:
        with suppress(OSError):
            temporary.unlink()
        fail(f"--out: cannot write {out}: {exc.strerror or exc}")
    return count


@subscribers_app.command("stats")
def subscribers_stats() -> None:
    """Readers per state, and what happened in the last seven days."""
    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        counts = count_by_status(session)
        recent = recent_event_counts(session, days=7)
        paused = paused_count(session)
    table = Table(title="Readers")
    table.add_column("state")
    table.add_column("count", justify="right")
    for status, count in sorted(counts.items()):
        table.add_row(status, str(count))
    table.add_row("of the active: paused", str(paused))
    console.print(table if counts else "No subscribers.")
    if recent:
        console.print(
            "Last 7 days: " + ", ".join(f"{kind} {count}" for kind, count in sorted(recent.items()))
        )


@app.command()
def emulator(
    provider: Annotated[
        str,
        typer.Argument(
            help="postmark, resend, sendgrid or mailgun (all are served; this one "
            "is the one whose settings are printed)."
        ),
    ] = "postmark",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).", min=0, max=65535)] = 8025,
    fail_rate: Annotated[
        float, typer.Option(help="Share of send requests answered 429 or 500, unprocessed.")
    ] = 0.0,
    drop_rate: Annotated[
        float, typer.Option(help="Share of send requests accepted, then the connection dropped.")
    ] = 0.0,
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer.")] = 0.0,
    answer_delay_ms: Annotated[
        float, typer.Option(help="Delay between accepting and answering a send.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the injected faults, to repeat a run.")] = None,
    token: Annotated[str, typer.Option(help="The API key / server token it accepts.")] = DEFAULT_TOKEN,
) -> None:
    """A local server that speaks the providers' APIs, records what it accepts and injects faults."""
    if provider not in ("postmark", "resend", "sendgrid", "mailgun"):
        fail(f"unknown provider {shown(provider)}; use postmark, resend, sendgrid or mailgun")
    if not (0 <= fail_rate <= 1 and 0 <= drop_rate <= 1):
        fail("--fail-rate and --drop-rate are shares between 0 and 1")
    for option, value in (("--latency-ms", latency_ms), ("--answer-delay-ms", answer_delay_ms)):
        if not (math.isfinite(value) and 0 <= value <= 600_000):
            fail(f"{option}: a delay in milliseconds between 0 and 600000")
    variable = {
        "postmark": "POSTMARK_SERVER_TOKEN",
        "resend": "RESEND_API_KEY",
        "sendgrid": "SENDGRID_API_KEY",
        "mailgun": "MAILGUN_API_KEY",
    }[provider]
    console.print(
        f"Emulating {provider} on http://{host}:{port} (faults: fail {fail_rate:.0%}, drop {drop_rate:.0%}, "
        f"latency {latency_ms:g} ms). Point the sender at it with:"
    )
    extra = " MAILGUN_DOMAIN=mg.example.com" if provider == "mailgun" else ""
    console.print(
        f"  NEWSLETTER_PROVIDER={provider} NEWSLETTER_API_BASE_URL=http://{host}:{port} "
        f"{variable}={token}{extra}",
        markup=False,
        soft_wrap=True,  # a line to copy: never broken
    )
    faults = Faults(
        fail_rate=fail_rate,
        drop_rate=drop_rate,
        latency_ms=latency_ms,
        answer_delay_ms=answer_delay_ms,
        seed=seed,
    )
    try:
        with suppress(KeyboardInterrupt):
            asyncio.run(run(host, port, Emulator(token=token, faults=faults)))
    except OSError as exc:  # the port is taken, the address is not this machine's, the name unknown
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


@app.command()
def scheduler() -> None:
    """The long-running scheduler (the same as `python scheduler.py`): compose, send, retry, purge and
    resume on their crontab schedules; stops cleanly on SIGTERM or SIGINT."""
    settings = load_settings()
    engine = open_store(settings)
    configure_logging(settings)
    with refusals():
        settings.signing_key()
        make_provider(settings)
        raise typer.Exit(scheduling.run(settings, engine))


@app.command()
def worker(
    exit_when_idle: Annotated[
        bool, typer.Option("--exit-when-idle", help="Exit once no issue is left sending (batch jobs, tests).")
    ] = False,
) -> None:
    """A sender worker: sends the issues marked for sending, sharing each with any other workers;
    stops cleanly on SIGTERM or SIGINT (the batches in flight finish)."""
    settings = load_settings()
    engine = open_store(settings)
    configure_logging(settings)
    with refusals():
        settings.signing_key()
        make_provider(settings)
        raise typer.Exit(sender_worker.run(settings, engine, exit_when_idle=exit_when_idle))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the store or upgrade its schema to this release's (Alembic migrations; data kept)."""
    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        before, after = schema.upgrade(engine)
    except DBAPIError as exc:
        unreachable("the store", exc)
    except SchemaError as exc:
        fail(str(exc))
    if before == after:
        console.print(f"Store already at revision [bold]{after}[/] (the newest).")
    else:
        console.print(f"Store upgraded from revision {before or '(empty)'} to [bold]{after}[/].")


@db_app.command("current")
def db_current() -> None:
    """The store's schema revision and the newest one this release knows; creates nothing."""
    settings = load_settings()
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        fail(f"no store at {path} (nothing was created); `newsletter init` creates it")
    engine = make_engine(settings.database_url)
    try:
        revision = schema.current(engine)
        empty = revision is None and not inspect(engine).has_table("issue")
    except DBAPIError as exc:
        unreachable("the store", exc)
    if empty:  # an empty database (PostgreSQL) is no store either
        fail(f"no store at {shown_url(settings.database_url)}; `newsletter init` creates it")
    console.print(f"Store revision: {revision or '(from before migrations)'}; newest: {schema.head()}")


@db_app.command("copy")
def db_copy(
    to: Annotated[str, typer.Option("--to", help="SQLAlchemy URL of the empty target store.")],
) -> None:
    """Copy this store (NEWSLETTER_DATABASE_URL) into an empty store at --to, e.g. SQLite into
    PostgreSQL; checked by counts, all or nothing."""
    try:
        to = parse_database_url(to)
    except ValueError as exc:
        fail(f"--to: {exc}")
    target_path = sqlite_path(to)
    if target_path is not None and (problem := sqlite_location_problem(target_path)):
        fail(f"--to: {problem}")
    settings = load_settings()
    source = open_store(settings)
    target = make_engine(to)
    try:
        counts = copy_store(
            source, target, on_table=lambda name, rows: console.print(f"  {name}: {rows} rows")
        )
    except CopyError as exc:
        fail(str(exc))
    except DBAPIError as exc:
        unreachable("the target store", exc)
    shown = target.url.render_as_string(hide_password=True)
    total = sum(count.target for count in counts)
    console.print(f"Counts checked, every table equal: {total} rows copied into {shown}.")


@schedule_app.command("show")
def schedule_show() -> None:
    """The jobs, their crontab schedules and their next run times (local time); changes nothing."""
    settings = load_settings()
    engine = open_store(settings)
    rows = scheduling.planned(settings, engine)
    table = Table(title=f"Scheduled jobs ({settings.timezone})")
    for column in ("job", "schedule", "next run"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("apscheduler").setLevel(max(logging.INFO, logging.getLevelName(settings.log_level)))
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def preview(
    host: Annotated[
        str, typer.Option(help="Address to listen on; keep it local (the studio has no login).")
    ] = ("127.0.0.1"),
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: any free port; the one taken is printed).")
    ] = 8001,
    templates: Annotated[
        Path | None,
        typer.Option(
            help="A templates directory (with email/) to work on instead of the package's; sends still "
            "use the package's.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """The editors' preview studio: every issue at 600 and 375 px, dark mode, the text part, the quality
    checks and test sends; it reloads when a template or the content changes."""
    from newsletter.studio import LOCAL_HOSTS, create_studio
    from newsletter.web import server

    settings = load_settings()
    server.configure_logging(settings.log_level, uvicorn_level="WARNING")
    path = sqlite_path(settings.database_url)
    engine = open_store(settings) if path is None or path.exists() else None  # no file: the sample only
    if host not in LOCAL_HOSTS:
        errors.print(
            f"[bold yellow]warning:[/] the preview has no login and listens on {host}; reach it through an "
            "SSH tunnel to 127.0.0.1 instead where you can. Tests can be sent from this machine only."
        )
    with refusals():
        studio = create_studio(settings, engine, templates=templates, hosts=(*LOCAL_HOSTS, host))
    server.run(
        studio,
        host=host,
        port=port,
        uvicorn_level="WARNING",
        on_ready=lambda bound: console.print(f"Preview on {server.url_for(host, bound)}", markup=False),
    )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="Port to listen on (0: any free port; the one taken is printed).")
    ] = 8000,
) -> None:
    """Run the readers' web app (signup, confirm, unsubscribe, preferences, votes) on uvicorn."""
    from newsletter.web import create_app, server

    settings = load_settings()
    server.configure_logging(settings.log_level)
    engine = open_store(settings)
    with refusals():
        web_app = create_app(settings, engine)
    server.run(
        web_app,
        host=host,
        port=port,
        forwarded_allow_ips=settings.trusted_proxies,
        on_ready=lambda bound: console.print(f"Web app on {server.url_for(host, bound)}", markup=False),
    )


@app.command()
def demo() -> None:
    """The whole loop on the embedded default: store, samples, readers, this week's issue, outbox."""
    settings = load_settings()
    now = datetime.now(UTC)
    week = Week.containing(now, settings.zone)
    with refusals():
        settings.signing_key()
        engine = open_store(settings, create=True)
        with session_scope(engine) as session:
            load_samples(session, settings.zone, now)
            added = add_active(session, DEMO_READERS, source="demo", key=settings.signing_key())
            result = compose(session, week, settings)
        if result.issue is None:
            fail(f"nothing to compose for {week}")
        report = run_send(engine, settings, result.issue.id)
        with session_scope(engine) as session:
            issue = session.get(Issue, result.issue.id)
            view = issue_view(session, issue, settings)
            picks = issue_comparisons(session, issue)
            preview_files = write_preview(view, settings, Path("render") / issue.slug)
    console.rule(f"[bold]{settings.name}[/] · demo")
    console.print(
        f"Store:    {shown_url(settings.database_url)}   readers added: {len(added.added)} "
        f"(already there: {len(added.already)})"
    )
    console.print(f"Issue:    {issue.week} · {issue.status} · subject: {view.subject}", markup=False)
    for index, comparison in enumerate(view.comparisons, 1):
        console.print(
            f"  {index}. {comparison.title}: panel ship {comparison.left.panel.label} vs "
            f"{comparison.right.panel.label}, community {comparison.left.community.label} vs "
            f"{comparison.right.community.label}",
            markup=False,
        )
    print_send_report(report, settings)
    outbox = settings.outbox_dir / issue.slug
    console.print(f"Outbox:   {outbox}/ ({len(list(outbox.glob('*.eml')))} .eml files, one per reader)")
    console.print(
        f"Preview:  {preview_files[0]}  (open it with: python -m webbrowser -t {preview_files[0].resolve()})"
    )
    console.print(f"Picked {len(picks)} of the week's comparisons; run `newsletter issue show` for details.")
