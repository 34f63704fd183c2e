"""What an issue did: the issue report (`reports.issue_report`, the same as `newsletter issue
report`) with charts (human and machine clicks per comparison and per link, votes per tool, the
readers it lost), every table as a CSV download."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter.charts import CHART_CSS, Series, bar_chart
from newsletter.console.issue_pages import issue_key
from newsletter.console.state import Console, ConsoleState, render
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import find_issue
from newsletter.reports import CSV_COLUMNS, IssueReport, issue_report

router = APIRouter()
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def tables(report: IssueReport) -> dict[str, tuple[list[str], list[list[object]]]]:
    """Every table of the page (name -> header, rows), the same ones the CSV downloads give."""
    unsubscribes = report.unsubscribes
    return {
        "summary": (list(CSV_COLUMNS), [[row[c] for c in CSV_COLUMNS] for row in report.csv_rows()]),
        "ledger": (["status", "deliveries"], sorted([s, n] for s, n in report.ledger.items())),
        "comparisons": (
            ["comparison", "title", "human clicks", "machine clicks"],
            [[c["slug"], c["title"], c["human"], c["machine"]] for c in report.comparisons],
        ),
        "links": (
            ["kind", "label", "url", "human clicks", "machine clicks", "readers who clicked"],
            [[k.kind, k.label, k.url, k.human, k.machine, k.human_readers] for k in report.links],
        ),
        "votes": (
            ["comparison", "tool", "ship", "skip"],
            [[v["comparison"], v["tool"], v["ship"], v["skip"]] for v in report.votes],
        ),
        "leaving": (
            ["what", "readers"],
            [
                ["hard bounces", report.bounced["hard"]],
                ["soft bounces", report.bounced["soft"]],
                ["complaints", report.complaints],
                ["unsubscribed by link", unsubscribes["link"]],
                ["unsubscribed by List-Unsubscribe", unsubscribes["list_unsubscribe"]],
                ["unsubscribed at the provider", unsubscribes["provider"]],
            ],
        ),
        "machine-reasons": (
            ["rule", "machine clicks"],
            [[reason, count] for reason, count in report.clicks["machine_reasons"].items()],
        ),
    }


def charts(report: IssueReport) -> dict[str, object]:
    comparisons = report.comparisons
    links = report.links
    _, leaving = tables(report)["leaving"]
    return {
        "comparisons": bar_chart(
            "Clicks per comparison, people and machines",
            [c["title"] for c in comparisons],
            [
                Series("people", [c["human"] for c in comparisons], "human"),
                Series("machines", [c["machine"] for c in comparisons], "machine"),
            ],
            unit="clicks",
            label_heading="Comparison",
        ),
        "links": bar_chart(
            "Clicks per link, people and machines",
            [link.label or link.url for link in links],
            [
                Series("people", [link.human for link in links], "human"),
                Series("machines", [link.machine for link in links], "machine"),
            ],
            unit="clicks",
            stacked=True,
            horizontal=True,
            label_heading="Link",
        ),
        "votes": bar_chart(
            "Readers' votes per tool from this issue",
            [f"{v['tool']} ({v['comparison']})" for v in report.votes],
            [
                Series("ship", [v["ship"] for v in report.votes], "good"),
                Series("skip", [v["skip"] for v in report.votes], "bad"),
            ],
            unit="votes",
            label_heading="Tool",
        ),
        "leaving": bar_chart(
            "Bounces, complaints and unsubscribes",
            [row[0] for row in leaving],
            [Series("readers", [row[1] for row in leaving], "bad")],
            unit="readers",
            horizontal=True,
            label_heading="What",
        ),
    }


def _report(state: ConsoleState, key: str) -> IssueReport | None:
    with session_scope(state.store()) as session:
        issue = find_issue(session, Week.parse(key))
        return issue_report(session, issue.id, state.settings.zone) if issue else None


async def _found(state: ConsoleState, key: str) -> IssueReport:
    report = await run_in_threadpool(_report, state, key)
    if report is None:
        raise HTTPException(404, f"There is no issue {key}, so no report.")
    return report


@router.get("/issues/{key}/report", response_class=HTMLResponse)
async def report_page(request: Request, state: Console, key: str) -> Response:
    key = issue_key(key)
    report = await _found(state, key)
    return render(
        request,
        "web/console/report.html.j2",
        key=key,
        report=report,
        charts=charts(report),
        tables=tables(report),
        chart_css=Markup(CHART_CSS),  # noqa: S704  (a constant of the charts module, not content)
    )


def csv_cell(value: object) -> object:
    """A cell a spreadsheet shows as text, never runs as a formula (titles and URLs are content)."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA) else value


@router.get("/issues/{key}/report/{table}.csv")
async def report_csv(state: Console, key: str, table: str) -> Response:
    key = issue_key(key)
    found = tables(await _found(state, key))
    if table not in found:
        raise HTTPException(404, f"There is no table {table[:40]!r}; the tables are: {', '.join(found)}.")
    header, rows = found[table]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{key.lower()}-{table}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
