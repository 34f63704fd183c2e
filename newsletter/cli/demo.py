"""`newsletter demo`: the whole loop on the embedded default, in one command."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from newsletter.cli.apps import app
from newsletter.cli.common import console, fail, load_settings, open_store, refusals
from newsletter.cli.sending import failed_deliveries, print_send_report, run_send

DEMO_READERS = ("ada@example.com", "grace@example.com", "linus@example.com", "margaret@example.com")


@app.command()
def demo() -> None:
    """The whole loop on the embedded default: store, samples, readers, this week's issue, outbox."""
    from newsletter import editor_log
    from newsletter.curation import Week
    from newsletter.db import session_scope, shown_url
    from newsletter.editions import ComposeOutcome, compose, issue_comparisons, issue_view
    from newsletter.models import Issue, IssueStatus
    from newsletter.output_files import OutputRefused
    from newsletter.preview import write_preview
    from newsletter.samples import load_samples
    from newsletter.subscriptions import add_active

    settings = load_settings()
    now = datetime.now(UTC)
    week = Week.containing(now, settings.zone)
    with refusals():
        settings.signing_key()
        engine = open_store(settings, create=True)
        who = editor_log.cli_editor()
        with session_scope(engine) as session:
            samples = load_samples(session, settings.zone, now)
            detail = f"the sample content (demo): new {samples.created}, updated {samples.updated}"
            editor_log.record(session, who, "import", detail=detail)
            added = add_active(session, DEMO_READERS, source="demo", key=settings.signing_key())
            detail = f"{len(added.added)} added, {len(added.already)} already active (demo)"
            editor_log.record(session, who, "add readers", detail=detail)
            result = compose(session, week, settings)
            if result.issue is not None and result.outcome != ComposeOutcome.UNCHANGED:
                detail = "; ".join(c.title for c in result.picks)
                editor_log.record(session, who, "compose", issue_id=result.issue.id, detail=detail)
            if result.issue is not None and result.issue.status != IssueStatus.SENT:
                editor_log.record(session, who, "send", issue_id=result.issue.id, detail="demo")
        if result.issue is None:
            fail(f"nothing to compose for {week}")
        report = run_send(engine, settings, result.issue.id)
        with session_scope(engine) as session:
            issue = session.get(Issue, result.issue.id)
            view = issue_view(session, issue, settings)
            picks = issue_comparisons(session, issue)
            try:
                preview_files = write_preview(view, settings, Path("render") / issue.slug)
            except OutputRefused as exc:
                fail(f"the editor's copy: {exc}")
            except OSError as exc:
                fail(f"the editor's copy: cannot write {exc.filename or 'render/'}: {exc.strerror or exc}")
    console.rule(f"[bold]{settings.name}[/] · demo")
    console.print(
        f"Store:    {shown_url(settings.database_url)}   readers added: {len(added.added)} "
        f"(already there: {len(added.already)})"
    )
    console.print(f"Issue:    {issue.week} · {issue.status} · subject: {view.subject}", markup=False)
    for index, comparison in enumerate(view.comparisons, 1):
        console.print(
            f"  {index}. {comparison.title}: panel ship {comparison.left.panel.label} vs "
            f"{comparison.right.panel.label}, community {comparison.left.community_label} vs "
            f"{comparison.right.community_label}",
            markup=False,
        )
    print_send_report(report, settings)
    outbox = settings.outbox_dir / issue.slug
    console.print(f"Outbox:   {outbox}/ ({len(list(outbox.glob('*.eml')))} .eml files, one per reader)")
    console.print(
        f"Preview:  {preview_files[0]}  (open it with: python -m webbrowser -t {preview_files[0].resolve()})"
    )
    console.print(f"Picked {len(picks)} of the week's comparisons; run `newsletter issue show` for details.")
    failed_deliveries(report)
