"""A send from the command line: its progress while it runs, and the summary when it ends."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from newsletter.cli.common import console, errors, fail

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from newsletter.config import Settings
    from newsletter.render import Renderer
    from newsletter.send_report import SendReport


def run_send(
    engine: Engine, settings: Settings, issue_id: int, renderer: Renderer | None = None
) -> SendReport:
    """A send with a progress bar on a terminal, plain log lines otherwise. Progress counts only the
    deliveries that really ended (sent, failed, suppressed); a send that stops says how far it got.
    `renderer`: the one the quality checks used, so the issue they rendered is not rendered again."""
    import asyncio

    from newsletter.delivery import SendAborted, Sender
    from newsletter.providers import make_provider

    provider = make_provider(settings)
    sender = Sender(engine, settings, provider, renderer)

    async def go(on_progress) -> SendReport:
        try:
            return await sender.send(issue_id, on_progress=on_progress)
        finally:
            await provider.aclose()

    try:
        if sys.stderr.isatty():  # Rich's progress bar loads only for a person at a terminal
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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


def failed_deliveries(report: SendReport) -> None:
    """A send that ended with deliveries the provider refused is not a success: after the summary,
    one line saying so, and exit 1. The issue is sent (every delivery reached an end state); the
    failed ones go out again with `newsletter issue retry` (or the scheduler's retry job)."""
    if report.failed_total:
        reason, _ = report.failed.most_common(1)[0]
        fail(
            f"{report.failed_total} of {report.settled} deliveries failed ({reason[:200]}); "
            "run `newsletter issue retry` once the cause is fixed"
        )
