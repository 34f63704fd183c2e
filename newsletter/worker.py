"""`newsletter worker`: a sender worker. Any number of them, on any number of machines, share the
sends in flight.

The scheduler (in worker mode) only marks an issue `sending` and writes its ledger; each worker
polls for such issues and claims batches from the ledger (`FOR UPDATE SKIP LOCKED` and a lease per
batch, see newsletter/ledger.py). A worker that dies mid-batch leaves its rows leased to a dead
sender; another worker takes them over, asks the provider what it accepted, and sends the rest.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.models import Issue, IssueStatus
from newsletter.providers import make_provider

log = logging.getLogger("newsletter.worker")
ABORT_PAUSE_SECONDS = 60.0  # after a fatal provider error (bad key, suspended account), per issue


def sending_issues(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        query = (
            select(Issue.id).where(Issue.status == IssueStatus.SENDING).order_by(col(Issue.send_started_at))
        )
        return list(session.exec(query))


async def work(settings: Settings, engine: Engine, stop: threading.Event, *, exit_when_idle: bool) -> int:
    """Send whatever is marked for sending until `stop` is set (or, with `exit_when_idle`, until no
    issue is left sending). One provider connection pool; one renderer cache per issue."""
    provider = make_provider(settings)
    senders: dict[int, Sender] = {}
    paused_until: dict[int, float] = {}
    sent_in_this_run = 0
    webhooks_due_at = 0.0
    webhooks: asyncio.Task | None = None  # the outgoing webhooks, in a thread beside the sending
    try:
        while not stop.is_set():
            if (webhooks is None or webhooks.done()) and time.monotonic() >= webhooks_due_at:
                webhooks_due_at = time.monotonic() + settings.webhook_interval_seconds
                webhooks = asyncio.create_task(asyncio.to_thread(_deliver_webhooks, settings, engine, stop))
            issues = sending_issues(engine)
            if not issues and exit_when_idle:
                break
            busy = False
            for issue_id in issues:
                if stop.is_set() or paused_until.get(issue_id, 0) > time.monotonic():
                    continue
                sender = senders.setdefault(issue_id, Sender(engine, settings, provider))
                try:
                    report = await sender.work(issue_id, stop=stop)
                except Exception as exc:  # a fatal provider error: say why, keep the queue, try later
                    log.error("issue %s: %s; the rest stays queued", issue_id, exc)
                    paused_until[issue_id] = time.monotonic() + ABORT_PAUSE_SECONDS
                    continue
                handled = report.sent + report.failed_total + report.suppressed_total + report.reconciled
                if handled:
                    busy = True
                    sent_in_this_run += report.sent
                    log.info(
                        "issue %s: %d sent, %d failed, %d suppressed, %d reconciled in %.1f s",
                        report.week,
                        report.sent,
                        report.failed_total,
                        report.suppressed_total,
                        report.reconciled,
                        report.seconds,
                    )
            senders = {issue_id: sender for issue_id, sender in senders.items() if issue_id in issues}
            if not busy:
                await asyncio.to_thread(stop.wait, settings.worker_poll_seconds)
    finally:
        if webhooks is not None:
            await webhooks  # it sees `stop` and ends after its batch in flight
        await provider.aclose()
    log.info("worker stopped; %d messages sent in this run", sent_in_this_run)
    return 0


def _deliver_webhooks(settings: Settings, engine: Engine, stop: threading.Event) -> None:
    """Workers share the webhook outbox with the scheduler and each other (claims and leases); a
    failure here is logged and never stops the sending."""
    from newsletter.outgoing_webhooks.sender import deliver_due

    try:
        report = deliver_due(engine, settings, stop=stop)
    except Exception:
        log.exception("delivering the outgoing webhooks failed; retried at the next poll")
        return
    if report.failed or report.gave_up:
        log.warning(
            "webhooks: %d delivered, %d failed, %d given up (%s)",
            report.delivered,
            report.failed,
            report.gave_up,
            "; ".join(report.errors),
        )
    elif report.delivered:
        log.info("webhooks: %d delivered", report.delivered)


def run(settings: Settings, engine: Engine, *, exit_when_idle: bool = False) -> int:
    """The worker process: SIGTERM or SIGINT lets the batches in flight finish, then it exits."""
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log.info("received %s: finishing the batches in flight, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    log.info("sender worker started (provider %s)", settings.provider)
    try:
        return asyncio.run(work(settings, engine, stop, exit_when_idle=exit_when_idle))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
