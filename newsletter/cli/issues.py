"""The week's issue: compose, show, edit, approve, cancel, send, check, retry, status, and `render`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.apps import app, issue_app
from newsletter.cli.common import (
    WeekOption,
    console,
    errors,
    fail,
    issue_or_pick_view,
    load_settings,
    open_store,
    output_directory,
    parse_week,
    print_checks,
    read_store,
    refusals,
    write_failed,
)
from newsletter.cli.sending import failed_deliveries, print_send_report, run_send


@issue_app.command("compose")
def issue_compose(week: WeekOption = None) -> None:
    """Pick the week's comparisons into its draft issue (created, or refreshed while still a draft)."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import ComposeOutcome, compose

    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        result = compose(session, chosen, settings)
        titles = [c.title for c in result.picks]
        if result.outcome not in (ComposeOutcome.EMPTY, ComposeOutcome.UNCHANGED):
            editor_log.record(
                session,
                editor_log.cli_editor(),
                "compose",
                issue_id=result.issue.id,
                detail="; ".join(titles),
            )
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
    # Plain reads through the driver alone: neither SQLAlchemy nor the table models load, and the
    # command starts in a third of the time (newsletter/issue_reads.py; tests/test_startup_imports.py).
    from newsletter.issue_reads import delivery_counts, find_issue, issue_view, missing_issue

    settings = load_settings()
    chosen = parse_week(week, settings)
    with refusals(), read_store(settings) as reader:
        issue = find_issue(reader, chosen)
        if issue is None:
            raise missing_issue(chosen)
        view = issue_view(reader, issue, settings)
        counts = delivery_counts(reader, issue.id)
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
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import issue_view, require_issue, set_overrides

    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        set_overrides(session, issue, subject=subject, preheader=preheader, reset=reset)
        words = (issue.subject_override or "(generated)", issue.preheader_override or "(generated)")
        detail = "subject: {} | preheader: {}".format(*words)
        editor_log.record(session, editor_log.cli_editor(), "edit", issue_id=issue.id, detail=detail)
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
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import approve, require_issue
    from newsletter.models import IssueStatus
    from newsletter.quality import GateFailed

    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        was = issue.status
        try:
            checks = approve(session, issue, settings, force=force)
        except GateFailed as exc:
            print_checks(exc.report, f"Quality checks of {chosen}")
            raise
        status = issue.status
        if was == IssueStatus.DRAFT:
            detail = f"{len(checks.findings)} warning(s)"
            if not checks.passed:
                detail = f"--force despite {len(checks.errors)} failing check(s); " + detail
            editor_log.record(session, editor_log.cli_editor(), "approve", issue_id=issue.id, detail=detail)
    if checks.findings:
        print_checks(checks, f"Quality checks of {chosen}")
    if not checks.passed:
        errors.print(f"[bold yellow]--force:[/] approved despite {len(checks.errors)} failing check(s).")
    console.print(f"Issue {chosen} is {status}; the scheduler sends it at its next send run.")


@issue_app.command("unapprove")
def issue_unapprove(week: WeekOption = None) -> None:
    """Turn the week's approved issue back into a draft: no scheduled send sends it until it is
    approved again (its pick can then be changed)."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import require_issue, unapprove

    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        issue = unapprove(session, require_issue(session, chosen))
        editor_log.record(session, editor_log.cli_editor(), "unapprove", issue_id=issue.id)
        status = issue.status
    console.print(f"Issue {chosen} is {status} again; approve it before its send.")


@issue_app.command("cancel")
def issue_cancel(week: WeekOption = None) -> None:
    """Cancel the week's issue: a draft or approved one is never sent; a send that stopped part-way
    (no sender running) sends nobody else, and the readers still queued are suppressed."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import cancel, require_issue
    from newsletter.ledger import counts as ledger_counts
    from newsletter.models import DeliveryStatus, IssueStatus

    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    with refusals(), session_scope(engine) as session:
        issue = require_issue(session, chosen)
        was = issue.status
        was_sending = was == IssueStatus.SENDING
        cancel(session, issue)
        editor_log.record(session, editor_log.cli_editor(), "cancel", issue_id=issue.id, detail=f"was {was}")
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
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import require_issue
    from newsletter.models import IssueStatus
    from newsletter.quality import check_issue, enforce
    from newsletter.render import Renderer

    settings = load_settings()
    engine = open_store(settings)
    chosen = parse_week(week, settings)
    renderer = Renderer(remember=True)  # the checks' render is the send's: rendered once
    with refusals():
        with session_scope(engine) as session:
            issue = require_issue(session, chosen)
            issue_id = issue.id
            sent = issue.status == IssueStatus.SENT
            checks = None if sent else check_issue(session, issue, settings, renderer)
        if checks is not None and checks.findings:
            print_checks(checks, f"Quality checks of {chosen}")
        if checks is not None:
            enforce(checks, chosen.label, force=force)
            if not checks.passed:
                errors.print(
                    f"[bold yellow]--force:[/] sending despite {len(checks.errors)} failing check(s)."
                )
        if not sent:  # the send is asked for (a rerun of a sent issue sends nobody: no event)
            forced = checks is not None and not checks.passed
            detail = f"--force despite {len(checks.errors)} failing check(s)" if forced else None
            with session_scope(engine) as session:
                editor_log.record(session, editor_log.cli_editor(), "send", issue_id=issue_id, detail=detail)
        report = run_send(engine, settings, issue_id, renderer)
    print_send_report(report, settings)
    failed_deliveries(report)


@issue_app.command("check")
def issue_check(week: WeekOption = None) -> None:
    """Run the quality checks on the week's issue (or the pick it would get): size, links, images, head,
    preheader, text part, list headers, subject. Exit 1 when one fails."""
    from newsletter.db import session_scope
    from newsletter.quality import check_view

    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        checks = check_view(issue_or_pick_view(session, chosen, settings), settings)
    print_checks(checks, f"Quality checks of {chosen}")
    raise typer.Exit(0 if checks.passed else 1)


@issue_app.command("retry")
def issue_retry(week: WeekOption = None) -> None:
    """Send again to the readers whose delivery failed (after the provider recovered)."""
    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.editions import require_issue
    from newsletter.ledger import retry_failed
    from newsletter.models import IssueStatus

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
            if requeued:
                detail = f"{requeued} failed deliveries queued again"
                editor_log.record(session, editor_log.cli_editor(), "retry", issue_id=issue_id, detail=detail)
        if not requeued:
            console.print(f"Issue {chosen}: no failed delivery to retry.")
            return
        console.print(f"Retrying {requeued} failed deliveries of {chosen}.")
        report = run_send(engine, settings, issue_id)
    print_send_report(report, settings)
    failed_deliveries(report)


@issue_app.command("status")
def issue_status(week: WeekOption = None) -> None:
    """The ledger and the provider events of a send: sent, failed by reason, suppressed, delivered,
    bounced, complained, opened, clicked."""
    from rich.table import Table

    from newsletter.db import session_scope
    from newsletter.editions import require_issue
    from newsletter.events.intake import issue_event_counts
    from newsletter.ledger import counts as ledger_counts
    from newsletter.ledger import failure_reasons
    from newsletter.models import DeliveryStatus

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


@app.command()
def render(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for issue.html, issue.txt and issue.eml.")
    ],
    week: WeekOption = None,
) -> None:
    """Write the week's issue as a preview reader would get it (the pick, if no issue exists yet)."""
    from newsletter.db import session_scope
    from newsletter.output_files import OutputRefused
    from newsletter.preview import write_preview

    output_directory("--out", out)
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        view = issue_or_pick_view(session, chosen, settings)
        try:
            written = write_preview(view, settings, out)
        except OutputRefused as exc:
            fail(f"--out: {exc}")
        except OSError as exc:
            write_failed("--out", out, exc)
    for path in written:
        console.print(f"wrote {path}")
