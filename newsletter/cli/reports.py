"""What came back: `issue report` (one issue's figures) and `stats` (the list, week by week)."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.apps import app, issue_app
from newsletter.cli.common import WeekOption, console, fail, load_settings, open_store, parse_week, refusals

JsonOption = Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Print the figures as CSV rows.")]


def _format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    return "json" if as_json else "csv" if as_csv else "table"


@issue_app.command("report")
def issue_report_command(
    week: WeekOption = None, as_json: JsonOption = False, as_csv: CsvOption = False
) -> None:
    """What the issue did: deliveries, bounces, complaints, unsubscribes it caused, human and machine
    clicks per comparison and per link, votes cast from it, opens where tracked, the week's signups."""
    from newsletter.db import session_scope
    from newsletter.editions import require_issue
    from newsletter.reports import CSV_COLUMNS, issue_report

    shape = _format(as_json, as_csv)
    settings = load_settings()
    chosen = parse_week(week, settings)
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        report = issue_report(session, require_issue(session, chosen).id, settings.zone)
    if shape == "json":
        _print_json(report.as_json())
    elif shape == "csv":
        _print_csv(CSV_COLUMNS, report.csv_rows())
    else:
        _print_issue(report)


@app.command("stats")
def stats_command(
    weeks: Annotated[int, typer.Option("--weeks", "-n", min=1, max=520, help="How many weeks back.")] = 8,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """The list week by week: its size, signups, confirmations, leaves by reason, and each issue's
    human click rate (readers with a human click / recipients)."""
    from newsletter.db import session_scope
    from newsletter.weekly import weekly_stats

    shape = _format(as_json, as_csv)
    settings = load_settings()
    engine = open_store(settings)
    with refusals(), session_scope(engine) as session:
        figures = weekly_stats(session, weeks, settings.zone)
    if shape == "json":
        _print_json({"weeks": [row.as_json() for row in figures]})
    elif shape == "csv":
        rows = [row.csv_row() for row in figures]
        _print_csv(tuple(rows[0]), rows)
    else:
        _print_stats(figures)


def _print_json(data: dict) -> None:
    import json
    import sys

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _print_csv(columns, rows) -> None:
    import csv
    import sys

    writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:  # text that a spreadsheet would run as a formula is quoted as text
        writer.writerow({key: _cell(value) for key, value in row.items()})


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _print_issue(report) -> None:
    from rich.table import Table

    console.print(
        f"[bold]Issue {report.week}[/] · {report.status}"
        + (f" · sent {report.sent_at[:16]} UTC" if report.sent_at else "")
    )
    console.print(
        f"Recipients {report.recipients} · delivered {report.delivered} · "
        f"bounced {report.bounced['hard']} hard, "
        f"{report.bounced['soft']} soft · complaints {report.complaints}"
    )
    u = report.unsubscribes
    console.print(
        f"Unsubscribes caused: {u['total']} (its link {u['link']}, List-Unsubscribe {u['list_unsubscribe']}, "
        f"provider {u['provider']})"
    )
    c = report.clicks
    console.print(
        f"Clicks: human {c['human']} from {c['human_readers']} reader(s) · machine {c['machine']}"
        + (
            " (" + ", ".join(f"{r} {n}" for r, n in c["machine_reasons"].items()) + ")"
            if c["machine_reasons"]
            else ""
        ),
        markup=False,
    )
    table = Table(show_header=True)
    for column in ("link", "kind", "human", "machine", "readers"):
        table.add_column(
            column, justify="right" if column in ("human", "machine", "readers") else "left", overflow="fold"
        )
    for link in report.links:
        table.add_row(
            link.label or link.url, link.kind, str(link.human), str(link.machine), str(link.human_readers)
        )
    console.print(table)
    for comparison in report.comparisons:
        console.print(
            f"  {comparison['title']}: human {comparison['human']}, machine {comparison['machine']}",
            markup=False,
        )
    for vote in report.votes:
        console.print(
            f"  votes {vote['comparison']} / {vote['tool']}: ship {vote['ship']}, skip {vote['skip']}",
            markup=False,
        )
    o = report.opens
    pixel = (
        f"pixel human {o['human']} ({o['human_readers']} readers), machine {o['machine']}"
        if o["tracked"]
        else "pixel off"
    )
    console.print(f"Opens: {pixel}; provider human {o['provider_human']}, machine {o['provider_machine']}")
    console.print(
        f"Signups in {report.week}: {report.signups['requested']} requested, "
        f"{report.signups['confirmed']} confirmed"
    )
    if report.reengagement.get("asked"):
        console.print(f"Re-engagement after this issue: {reengagement_line(report.reengagement)}")


def reengagement_line(figures: dict[str, int]) -> str:
    """`asked 12: 3 waiting, 4 stayed (2 by the button, 2 by a click or vote), 5 let go, 0 left`."""
    kept = figures["stayed"] + figures["engaged"]
    return (
        f"asked {figures['asked']}: {figures['waiting']} waiting, {kept} stayed ({figures['stayed']} by "
        f"the button, {figures['engaged']} by a click, vote or preferences change), {figures['let_go']} "
        f"let go, {figures['left']} left otherwise"
    )


def _rate_shown(row, rate: float | None) -> str:
    if rate is not None:
        return f"{rate:.1%}"
    return "not tracked" if row.issue and row.recipients and not row.tracked else ""


def _print_stats(figures) -> None:
    from rich.table import Table

    table = Table(show_header=True)
    for column in (
        "week",
        "list",
        "signups",
        "confirmed",
        "unsubscribed",
        "bounced",
        "complained",
        "erased",
        "issue",
        "human click rate",
    ):
        table.add_column(column, justify="left" if column in ("week", "issue") else "right")
    for row in figures:
        rate = row.human_click_rate
        table.add_row(
            row.week,
            str(row.list_size),
            str(row.signups),
            str(row.confirmations),
            *(
                str(row.leaves.get(reason, 0))
                for reason in ("unsubscribed", "bounced", "complained", "erased")
            ),
            row.issue or "",
            _rate_shown(row, rate),
        )
    console.print(table)
