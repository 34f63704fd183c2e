"""The readers on the list: `subscribers add`, `import`, `export` and `stats`."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from newsletter.cli.apps import subscribers_app
from newsletter.cli.common import (
    console,
    errors,
    fail,
    load_settings,
    open_store,
    refusals,
    shown,
    write_failed,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.config import Settings
    from newsletter.subscriber_files import ImportReport


@subscribers_app.command("add")
def subscribers_add(
    emails: Annotated[list[str], typer.Argument(help="Addresses whose consent you vouch for.")],
) -> None:
    """Add readers as active (the list owner vouches for their consent)."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.subscriptions import add_active

    refuse_bad_addresses(emails)
    settings = load_settings()
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        result = add_active(session, emails, source="cli", key=settings.signing_key())
        detail = (  # counts only: addresses never go into an editor event
            f"{len(result.added)} added, {len(result.already)} already active, "
            f"{len(result.not_reactivated)} not reactivated, {len(result.erased)} erased before"
        )
        editor_log.record(session, editor_log.cli_editor(), "add readers", detail=detail)
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
    from newsletter.headers import HeaderValueError, normalise_email

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
    path: Annotated[
        Path,
        typer.Argument(
            help="A platform's subscriber export (CSV, or Mailchimp's or Substack's zip), or a CSV with "
            "an 'email' column.",
            show_default=False,
        ),
    ],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="The platform the file comes from: auto (recognised from the header), substack, mailchimp, "
            "beehiiv, ghost, listmonk, buttondown, kit or csv (every row a reader you vouch for).",
        ),
    ] = "auto",
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Add as pending and email each a confirmation.")
    ] = False,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid rows, report the rest.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what the import would do, per outcome; store nothing.")
    ] = False,
) -> None:
    """Import a list: readers the export says are subscribed become active (you vouch for their consent),
    or pending with --confirm; readers it says left are stored as suppressed and never made active.

    Readers who unsubscribed, bounced, complained or were erased here are never added back."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.import_formats import CHOICES
    from newsletter.providers import ProviderError
    from newsletter.subscriber_files import FileRefused, import_file

    if source not in CHOICES:
        fail(f"--from {shown(source)}: not a format; choose one of {', '.join(CHOICES)}")
    settings = load_settings()
    engine = open_store(settings)
    try:
        with session_scope(engine) as session:
            report = import_file(
                session,
                path,
                key=settings.signing_key(),
                confirm=confirm,
                skip_invalid=skip_invalid,
                wanted=source,
                dry_run=dry_run,
            )
            if dry_run:
                session.rollback()
            else:
                detail = (
                    f"{path.name}: {report.rows} row(s), {len(report.added)} added, "
                    f"{report.activated} made active, "
                    f"{report.suppressed} suppressed, {len(report.skipped)} skipped"
                    + (", confirmations to send" if confirm else "")
                )
                editor_log.record(session, editor_log.cli_editor(), "import readers", detail=detail)
    except FileRefused as refused:
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
    print_import_report(report, path, source, confirm)
    if confirm and report.to_confirm and not dry_run:
        import asyncio

        try:
            with refusals():
                sent = asyncio.run(send_confirmations(settings, engine, report.to_confirm))
        except ProviderError as exc:
            fail(
                f"the readers are stored as pending, but the confirmation emails stopped: {exc}; once that "
                "is fixed, run the same import again: it sends only the confirmations still owed"
            )
        console.print(f"Sent {sent} confirmation email(s) through {settings.provider}.")


def print_import_report(report: ImportReport, path: Path, source: str, confirm: bool) -> None:
    """Which format was read, the summary line, and the table of outcomes by reason."""
    for part in report.parts:
        name = f"{part.name} in {path}" if part.name else str(path)
        detail = f" ({part.detail})" if part.detail else ""
        how = "recognised" if source == "auto" else "read"
        what = "a plain CSV" if part.format.name == "csv" else f"{part.format.title}'s export"
        console.print(
            f"{name}: {how} as {what}{detail} (--from {part.format.name}), {part.rows} row(s).",
            markup=False,
        )
    for name in report.ignored:
        console.print(f"{name} in {path}: not a subscriber export, ignored.", markup=False)
    if report.dry_run:
        console.print("Dry run: nothing was stored. The import would do this:")
    totals = Counter()
    for (outcome, _), count in report.outcomes.items():
        totals[outcome] += count
    if confirm:
        added = f"{totals['add as pending']} added as pending (confirmation emails follow)"
    else:
        added = f"{totals['add as active']} added as active"
    pending = (
        f", {totals['add as pending']} added as pending" if totals["add as pending"] and not confirm else ""
    )
    console.print(
        f"{report.rows} row(s): {added}, {report.activated} pending made active{pending}, "
        f"{report.already} already on the list, {report.duplicates} duplicate row(s) merged."
    )
    width = max((len(f"{outcome}: {reason}") for outcome, reason, _ in report.table()), default=0)
    for outcome, reason, count in report.table():
        label = f"{outcome}: {reason}" if reason else outcome
        console.print(f"  {label.ljust(width)}  {count:>7,}", markup=False)
    if report.not_reactivated:
        console.print(f"{len(report.not_reactivated)} left earlier and were not reactivated.")
    if report.erased:
        console.print(f"{report.erased} were erased at their request and were not added.")
    if report.suppressed:
        verb = "would be" if report.dry_run else "were"
        console.print(
            f"{report.suppressed} {verb} stored as suppressed: their export says they left; only their "
            "own confirmation brings them back."
        )
    if report.skipped:
        console.print(f"{len(report.skipped)} invalid row(s) skipped:")
        for problem in report.skipped[:50]:
            console.print(f"  {problem}", markup=False)


async def send_confirmations(settings: Settings, engine: Engine, readers: list[tuple[int, str]]) -> int:
    """Confirmation emails in provider-sized batches; each batch is recorded once the provider took it."""
    from newsletter.db import session_scope
    from newsletter.notices import NoticeKind, Notices
    from newsletter.providers import make_provider
    from newsletter.subscriber_files import record_confirmations_sent

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
    from newsletter.db import session_scope
    from newsletter.output_files import output_file_problem
    from newsletter.subscriber_files import export_csv

    if out is not None and (problem := output_file_problem(out)):
        fail(f"--out: {problem}")
    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        if out is None:
            export_csv(session, sys.stdout)  # a failed write ends the command through `main` (exit 1)
            return
        count = write_export(session, out)
    errors.print(f"wrote {count} reader(s) to {out}", markup=False)


def write_export(session, out: Path) -> int:
    """The export into `out` whole or not at all (newsletter/output_files.py)."""
    from newsletter.output_files import OutputRefused, write_whole
    from newsletter.subscriber_files import export_csv

    try:
        return write_whole(out, lambda handle: export_csv(session, handle))
    except OutputRefused as exc:
        fail(f"--out: {exc}")
    except OSError as exc:
        write_failed("--out", out, exc)


@subscribers_app.command("stats")
def subscribers_stats() -> None:
    """Readers per state, what happened in the last seven days, and the re-engagement questions:
    asked, stayed, let go."""
    from rich.table import Table

    from newsletter.cli.reports import reengagement_line
    from newsletter.db import session_scope
    from newsletter.subscriptions import count_by_status, paused_count, recent_event_counts
    from newsletter.sunset import figures

    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        counts = count_by_status(session)
        recent = recent_event_counts(session, days=7)
        paused = paused_count(session)
        reengagement = figures(session)
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
    span = settings.sunset_issues
    state = f"after {span} silent issues" if span else "off: NEWSLETTER_SUNSET_ISSUES=0"
    console.print(f"Re-engagement ({state}): {reengagement_line(reengagement)}", markup=False)
