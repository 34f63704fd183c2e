"""The store and its comparisons: `init`, `import`, `comparisons list` and `comparisons pin`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.apps import app, comparisons_app
from newsletter.cli.common import (
    WeekOption,
    console,
    fail,
    load_settings,
    open_store,
    parse_week,
    refusals,
    shown,
)


@app.command()
def init(
    sample: Annotated[bool, typer.Option("--sample", help="Also load the sample comparisons.")] = False,
) -> None:
    """Create the store (safe to run again); with --sample, load the sample content into this week."""
    from rich.markup import escape

    from newsletter import editor_log
    from newsletter.curation import Week
    from newsletter.db import session_scope, shown_url
    from newsletter.samples import load_samples

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
                detail = f"the sample content: new {summary.created}, updated {summary.updated}"
                editor_log.record(session, editor_log.cli_editor(), "import", detail=detail)
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
    from newsletter import editor_log
    from newsletter.content import import_files
    from newsletter.db import session_scope

    refuse_unreadable(paths)
    settings = load_settings()
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        summary = import_files(session, paths, settings.zone)
        files = ", ".join(path.name for path in paths)
        detail = f"{files}: new {summary.created}, updated {summary.updated}"
        editor_log.record(session, editor_log.cli_editor(), "import", detail=detail)
    console.print(
        f"Imported {summary.total} comparison(s): {len(summary.created)} new, {len(summary.updated)} updated."
    )


def refuse_unreadable(paths: list[Path]) -> None:
    """Refuse the run, naming each file, when any input file cannot be read (nothing is stored)."""
    from newsletter.locations import input_file_problem

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
    from rich.table import Table
    from sqlmodel import col, select

    from newsletter.content import comparison_views
    from newsletter.db import session_scope
    from newsletter.models import Comparison

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
    from sqlmodel import select

    from newsletter import editor_log
    from newsletter.db import session_scope
    from newsletter.models import Comparison

    settings = load_settings()
    engine = open_store(settings)
    with session_scope(engine) as session:
        comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
        if comparison is None:
            fail(f"no comparison with slug {shown(slug)}")
        comparison.pinned = not unpin
        session.add(comparison)
        action = "unpin" if unpin else "pin"
        editor_log.record(session, editor_log.cli_editor(), action, comparison_id=comparison.id, detail=slug)
    console.print(f"{slug} is {'no longer ' if unpin else ''}pinned.")
