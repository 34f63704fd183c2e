"""The scheduler's jobs, its triggers and its loop (APScheduler 3.x, jobs persisted in the store).

Jobs (each a five-field crontab in NEWSLETTER_TIMEZONE, each its own setting):
  compose  the week's draft (Friday 12:00)           send    the approved issue (Monday 09:00)
  retry    failed deliveries of recent sends (hourly)  purge   signups never confirmed in time (daily)
  resume   sends interrupted by a stop or a crash (every ten minutes, and at start)
  retention  tracked-link hits past NEWSLETTER_HIT_RETENTION_DAYS folded into counts (daily)
  webhooks  outgoing webhooks due, every NEWSLETTER_WEBHOOK_INTERVAL_SECONDS (in the process's memory)
  sunset   with NEWSLETTER_SUNSET_ISSUES: silent readers asked, unanswered ones let go (daily)
The retry job also sends the welcome emails a failure left owed (newsletter.welcome).

Sending an issue twice is impossible by construction, not by care: the ledger sends each reader once
and a send holds a lease on the issue that a second scheduler cannot take. A send run missed by more
than NEWSLETTER_SEND_GRACE_HOURS is not made up for (stale news); several missed runs coalesce into one.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlmodel import col, delete, select

from newsletter import editor_log, ledger
from newsletter.config import ConfigError, Settings
from newsletter.crontab import parse_cron
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import SendAborted, Sender, SendRefused
from newsletter.editions import ComposeOutcome, EditionError, approve, compose, find_issue
from newsletter.ledger import retry_failed
from newsletter.models import (
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    utcnow,
)
from newsletter.notices import Notices, editor_alert
from newsletter.providers import make_provider
from newsletter.providers.base import log_send_failure, refused_result
from newsletter.quality import GateFailed, Report, check_issue
from newsletter.welcome import send_owed_welcomes

log = logging.getLogger("newsletter.scheduler")
JOBS_TABLE = "apscheduler_jobs"


# --- what each job does ----------------------------------------------------------------------------


@dataclass
class Context:
    """What the jobs need; set once per scheduler process (jobs are stored by name, not by value)."""

    settings: Settings
    engine: Engine
    stop: threading.Event


_context: Context | None = None


def set_context(context: Context) -> None:
    global _context
    _context = context


def context() -> Context:
    if _context is None:
        raise RuntimeError("the scheduler context is not set")
    return _context


def compose_job(now: datetime | None = None) -> str:
    """Compose this week's draft (and approve it under NEWSLETTER_AUTO_APPROVE)."""
    ctx = context()
    now = now or utcnow()
    week = Week.containing(now, ctx.settings.zone)
    with session_scope(ctx.engine) as session:
        result = compose(session, week, ctx.settings)
        if result.outcome == ComposeOutcome.EMPTY:
            message = f"compose {week}: no comparison published this week is free to pick; nothing composed"
        elif result.outcome == ComposeOutcome.UNCHANGED:
            message = f"compose {week}: the issue is {result.issue.status}; its picks are fixed"
        else:
            message = f"compose {week}: draft {result.outcome.value} with {len(result.picks)} comparison(s)"
            titles = "; ".join(c.title for c in result.picks)
            editor_log.record(
                session, editor_log.SCHEDULER, "compose", issue_id=result.issue.id, detail=titles
            )
            if ctx.settings.auto_approve:
                refusal = _auto_approve(session, result.issue, ctx.settings)
                if refusal is not None:
                    message += f"; NOT approved (NEWSLETTER_AUTO_APPROVE): {refusal}"
                    log.error(message)
                    return message
                message += ", approved (NEWSLETTER_AUTO_APPROVE)"
    log.info(message)
    return message


def _auto_approve(session, issue: Issue, settings: Settings) -> str | None:
    """NEWSLETTER_AUTO_APPROVE approves only what `newsletter issue approve` would: None when
    approved, else why not, with every failing check's finding."""
    was = issue.status
    try:
        report = approve(session, issue, settings)
    except GateFailed as exc:
        return f"{exc} Findings: {_findings(exc.report)}"
    except EditionError as exc:
        return str(exc)
    if was == IssueStatus.DRAFT:
        detail = f"NEWSLETTER_AUTO_APPROVE; {len(report.findings)} warning(s)"
        editor_log.record(session, editor_log.SCHEDULER, "approve", issue_id=issue.id, detail=detail)
    return None


def _findings(report: Report) -> str:
    return "; ".join(f"{f.gate}: {f.message} ({f.where})" for f in report.errors)


def issue_to_send(session, settings: Settings, now: datetime) -> Issue | None:
    """The issue a send run is for: this week's if it was composed already (a send scheduled late in
    the week), else last week's (the default: compose Friday, send Monday)."""
    this_week = Week.containing(now, settings.zone)
    last_week = Week.containing(now - timedelta(days=7), settings.zone)
    for week in (this_week, last_week):
        issue = find_issue(session, week)
        if issue is not None and issue.status != IssueStatus.CANCELLED:
            return issue
    return None


def send_job(now: datetime | None = None) -> str:
    ctx = context()
    now = now or utcnow()
    with session_scope(ctx.engine) as session:
        issue = issue_to_send(session, ctx.settings, now)
        if issue is None:
            message = "send: no issue for this week or last; nothing to send"
            log.info(message)
            return message
        if issue.status == IssueStatus.SENT:
            message = f"send {issue.week}: already sent"
            log.info(message)
            return message
        if issue.status == IssueStatus.DRAFT:
            if not ctx.settings.auto_approve:
                message = (
                    f"send {issue.week}: NOT SENT - the issue is still a draft. Approve it with "
                    f"`newsletter issue approve --week {issue.week}` and send it with `newsletter issue send "
                    f"--week {issue.week}`."
                )
                log.warning(message)
                _alert_editors(ctx, issue.week)
                return message
            refusal = _auto_approve(session, issue, ctx.settings)
            if refusal is not None:
                message = f"send {issue.week}: NOT SENT - not approved (NEWSLETTER_AUTO_APPROVE): {refusal}"
                log.error(message)
                _alert_editors(ctx, issue.week)
                return message
        issue_id, week = issue.id, issue.week
        checks = check_issue(session, issue, ctx.settings)
    if not checks.passed:
        findings = _findings(checks)
        message = (
            f"send {week}: NOT SENT - the issue fails {len(checks.errors)} quality check(s): {findings}. "
            f"Fix them (`newsletter issue check --week {week}`, `newsletter preview`), or send it anyway "
            f"with `newsletter issue send --week {week} --force`."
        )
        log.error(message)
        return message
    _record(ctx, "send", issue_id, "the scheduled send")
    return _run_send(ctx, issue_id, week)


def _record(ctx: Context, action: str, issue_id: int, detail: str) -> None:
    """The scheduler's own change, as an editor event (the send records it before it starts)."""
    with session_scope(ctx.engine) as session:
        editor_log.record(session, editor_log.SCHEDULER, action, issue_id=issue_id, detail=detail)


def _run_send(ctx: Context, issue_id: int, week: str) -> str:
    if ctx.settings.sends_through_workers:  # several machines: the workers do the sending
        return _open_for_workers(ctx, issue_id, week)

    async def go():
        provider = make_provider(ctx.settings)
        try:
            return await Sender(ctx.engine, ctx.settings, provider).send(issue_id, stop=ctx.stop)
        finally:
            await provider.aclose()

    try:
        report = asyncio.run(go())
    except SendRefused as exc:  # it does not render, is too big, the provider cannot be used
        message = f"send {week}: NOT SENT - {exc}"
        log.error(message)
        return message
    except EditionError as exc:  # e.g. another process holds the lease
        message = f"send {week}: not sent by this process: {exc}"
        log.warning(message)
        return message
    except SendAborted as exc:
        message = f"send {week}: stopped by the provider: {exc}; the rest stays queued"
        log.error(message)
        return message
    message = (
        f"send {week}: {report.sent} sent, {report.failed_total} failed, {report.suppressed_total} "
        f"suppressed in {report.seconds:.1f} s"
        + ("; stopped before the end (shutdown)" if report.stopped else "")
    )
    if report.failed_total:  # the retry job sends them again; an editor should know meanwhile
        log.error(
            message + f"; failed: {', '.join(f'{n} × {r[:120]}' for r, n in report.failed.most_common(3))}"
        )
    else:
        log.info(message)
    return message


def _open_for_workers(ctx: Context, issue_id: int, week: str) -> str:
    """Worker mode: what can refuse the send is checked here first (every variant renders, the
    provider can be used), then the issue is marked `sending` for the workers."""

    async def prepare():
        provider = make_provider(ctx.settings)
        try:
            await Sender(ctx.engine, ctx.settings, provider).prepare(issue_id)
        finally:
            await provider.aclose()

    try:
        asyncio.run(prepare())
        with session_scope(ctx.engine) as session:
            owed = ledger.open_send(session, issue_id).get(DeliveryStatus.QUEUED, 0)
    except (SendRefused, ledger.IssueCancelled, ConfigError) as exc:
        message = f"send {week}: NOT SENT - {exc}"
        log.error(message)
        return message
    message = f"send {week}: marked for sending; {owed} deliveries queued for `newsletter worker`"
    log.info(message)
    return message


def _alert_editors(ctx: Context, week: str) -> None:
    """Where editors are configured, email them the preview link of the unapproved issue."""
    editors = ctx.settings.editor_email_list
    if not editors:
        return
    notices = Notices(ctx.settings)
    messages = [editor_alert(notices, week=week, email=address) for address in editors]

    async def go():
        provider = make_provider(ctx.settings)
        try:
            results = await provider.send_batch(messages)
        finally:
            await provider.aclose()
        for result in results:
            if not result.accepted:
                raise refused_result(result)

    try:
        asyncio.run(go())
    except Exception as exc:
        log_send_failure(log, f"the editors' alert about {week}", exc)


def retry_job(now: datetime | None = None) -> str:
    """Failed deliveries of sends in the last two days go out again."""
    ctx = context()
    since = (now or utcnow()) - timedelta(days=2)
    done = []
    with session_scope(ctx.engine) as session:
        recent = session.exec(
            select(Issue).where(Issue.status == IssueStatus.SENT, col(Issue.sent_at) >= since)
        ).all()
        targets = [(issue.id, issue.week, retry_failed(session, issue.id)) for issue in recent]
        for issue_id, _week, requeued in targets:
            if requeued:
                detail = f"{requeued} failed deliveries queued again"
                editor_log.record(session, editor_log.SCHEDULER, "retry", issue_id=issue_id, detail=detail)
    for issue_id, week, requeued in targets:
        if requeued:
            done.append(_run_send(ctx, issue_id, week))
    message = "; ".join(done) or "retry: no failed delivery in recent sends"
    welcomes = send_owed_welcomes(ctx.engine, ctx.settings, make_provider, now)
    if welcomes:
        message += (
            f"; welcome emails owed: {welcomes['sent']} sent, {welcomes['failed']} still owed, "
            f"{welcomes['dropped']} dropped"
        )
    log.info(message)
    return message


def resume_job(now: datetime | None = None) -> str:
    """Sends left unfinished (a shutdown, a crash) are finished, within NEWSLETTER_RESUME_HOURS."""
    ctx = context()
    now = now or utcnow()
    with session_scope(ctx.engine) as session:
        interrupted = session.exec(select(Issue).where(Issue.status == IssueStatus.SENDING)).all()
        targets = [(i.id, i.week, i.send_started_at, i.sender_lease_until) for i in interrupted]
    done = []
    for issue_id, week, started, lease_until in targets:
        if lease_until is not None and lease_until > now:
            continue  # a live send holds it
        if started is not None and now - started > timedelta(hours=ctx.settings.resume_hours):
            log.error(
                "send %s was interrupted %s ago, longer than NEWSLETTER_RESUME_HOURS: not resumed; "
                "finish it with `newsletter issue send --week %s`",
                week,
                now - started,
                week,
            )
            continue
        _record(ctx, "send", issue_id, "resumed after an interruption")
        done.append(_run_send(ctx, issue_id, week))
    message = "; ".join(done) or "resume: no interrupted send"
    log.info(message)
    return message


def purge_job(now: datetime | None = None) -> str:
    """Pending signups whose confirmation link expired are deleted: an address that never confirmed
    is not kept."""
    ctx = context()
    cutoff = (now or utcnow()) - timedelta(days=ctx.settings.confirm_token_days)
    with session_scope(ctx.engine) as session:
        stale = session.exec(
            select(Subscriber.id).where(
                Subscriber.status == SubscriberStatus.PENDING,
                col(Subscriber.confirmed_at).is_(None),
                col(Subscriber.requested_at) < cutoff,
            )
        ).all()
        if stale:
            session.exec(delete(SubscriberEvent).where(col(SubscriberEvent.subscriber_id).in_(stale)))
            session.exec(delete(Subscriber).where(col(Subscriber.id).in_(stale)))
    message = f"purge: {len(stale)} expired pending signup(s) deleted"
    log.info(message)
    return message


_last_prune: list[float] = []  # when this process last pruned the webhook log (monotonic seconds)
WEBHOOK_PRUNE_SECONDS = 3600.0


def webhooks_job() -> str:
    """Deliver the outgoing webhooks due (every NEWSLETTER_WEBHOOK_INTERVAL_SECONDS); hourly, prune
    what is past NEWSLETTER_WEBHOOK_RETENTION_DAYS."""
    import time

    from newsletter.outgoing_webhooks.sender import deliver_due, prune

    ctx = context()
    report = deliver_due(ctx.engine, ctx.settings, stop=ctx.stop)
    if not _last_prune or time.monotonic() - _last_prune[-1] > WEBHOOK_PRUNE_SECONDS:
        _last_prune[:] = [time.monotonic()]
        prune(ctx.engine, ctx.settings)
    message = f"webhooks: {report.delivered} delivered, {report.failed} failed, {report.gave_up} given up"
    if report.failed or report.gave_up:
        log.warning("%s (%s)", message, "; ".join(report.errors))
    elif report.delivered:
        log.info(message)
    return message


def retention_job(now: datetime | None = None) -> str:
    """Raw hits past their retention become per-link counts (see newsletter.tracking.retention)."""
    from newsletter.tracking.retention import fold_old_hits

    ctx = context()
    done = fold_old_hits(ctx.engine, ctx.settings, now)
    message = (
        f"retention: {done.hits} hit(s) older than {ctx.settings.hit_retention_days} days folded into the "
        f"counts of {done.issues} issue(s)"
    )
    log.info(message)
    return message


def sunset_job(now: datetime | None = None) -> str:
    """With NEWSLETTER_SUNSET_ISSUES: silent readers asked once, unanswered ones let go (see
    newsletter.sunset)."""
    from newsletter.sunset import run as run_sunset

    ctx = context()
    message = run_sunset(ctx.engine, ctx.settings, make_provider, now).summary()
    log.info(message)
    return message


# --- the scheduler -----------------------------------------------------------------------------------


def job_specs(settings: Settings) -> dict[str, tuple]:
    """job id -> (function, crontab, misfire grace in seconds)."""
    return {
        "compose": (compose_job, settings.compose_cron, 12 * 3600),
        "send": (send_job, settings.send_cron, int(settings.send_grace_hours * 3600)),
        "retry": (retry_job, settings.retry_cron, 3600),
        "purge": (purge_job, settings.purge_cron, 24 * 3600),
        "resume": (resume_job, settings.resume_cron, 3600),
        "retention": (retention_job, settings.retention_cron, 24 * 3600),
        "sunset": (sunset_job, settings.sunset_cron, 24 * 3600),
    }


def build_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    """A scheduler whose jobs live in the store: a restart keeps their next run times (and so notices
    what it missed); a changed crontab setting replaces its job."""
    scheduler = BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE),
            # This process's own one-off jobs: in the shared store, a second scheduler on the same
            # database could run and remove them first, and APScheduler's loop dies on the lookup.
            "process": MemoryJobStore(),
        },
        executors={"default": ThreadPoolExecutor(3)},  # a send, another job, and the webhooks
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=settings.zone,
    )
    scheduler.start(paused=True)
    for job_id, (function, expr, grace) in job_specs(settings).items():
        trigger = parse_cron(expr, settings.zone)
        existing = scheduler.get_job(job_id)
        if (
            existing is not None
            and getattr(existing.trigger, "expr", None) == expr
            and str(existing.trigger.timezone) == settings.timezone
            and existing.misfire_grace_time == grace
        ):
            continue  # keep its persisted next run time: that is how a missed run is noticed
        scheduler.add_job(
            function,
            trigger,
            id=job_id,
            name=job_id,
            replace_existing=True,
            misfire_grace_time=grace,
            coalesce=True,
            max_instances=1,
        )
    return scheduler


def describe(scheduler: BackgroundScheduler, zone: ZoneInfo) -> list[tuple[str, str, str]]:
    """(job, schedule, next run in local time) for every job of a running scheduler."""
    last = datetime.max.replace(tzinfo=zone)
    return [
        (job.id, getattr(job.trigger, "expr", str(job.trigger)), _local(job.next_run_time, zone))
        for job in sorted(scheduler.get_jobs(), key=lambda j: j.next_run_time or last)
    ]


def planned(settings: Settings, engine: Engine) -> list[tuple[str, str, str]]:
    """(job, schedule, next run) without changing anything: the stored next run where the scheduler
    has run with this schedule, else when it would first run if started now."""
    stored = {}
    if inspect(engine).has_table(JOBS_TABLE):  # looking must not create the table
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        store.start(None, "default")
        stored = {job.id: job for job in store.get_all_jobs()}
    rows = []
    for job_id, (_, expr, _) in job_specs(settings).items():
        job = stored.get(job_id)
        if job is not None and getattr(job.trigger, "expr", None) == expr:
            rows.append((job_id, expr, _local(job.next_run_time, settings.zone)))
        else:
            first = parse_cron(expr, settings.zone).get_next_fire_time(None, datetime.now(settings.zone))
            rows.append((job_id, expr, _local(first, settings.zone) + " (when the scheduler starts)"))
    rows.append(("webhooks", f"every {settings.webhook_interval_seconds:g} s", "while the scheduler runs"))
    return rows


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %Y %H:%M %Z") if moment else "paused"


def run(settings: Settings, engine: Engine) -> int:
    """The long-running process: start, log what comes next, run until SIGTERM or SIGINT, then let a
    send in progress finish its batches and leave cleanly."""
    stop = threading.Event()
    set_context(Context(settings, engine, stop))
    scheduler = build_scheduler(settings, engine)
    grace = timedelta(hours=settings.send_grace_hours)

    def on_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            late = utcnow() - event.scheduled_run_time
            if event.job_id == "send":
                log.error(
                    "the send scheduled for %s was missed by %s, more than the grace of %s: stale news is "
                    "not sent. Send it by hand with `newsletter issue send` if it still matters.",
                    event.scheduled_run_time,
                    late,
                    grace,
                )
            else:
                log.warning(
                    "job %s scheduled for %s was missed by %s", event.job_id, event.scheduled_run_time, late
                )
        elif event.code == EVENT_JOB_ERROR:
            log.error("job %s failed: %s", event.job_id, event.exception)
        if event.job_id != "webhooks":  # every few seconds: its next run is not news
            finished.put(event.job_id)  # its next run is logged by the main thread: a listener runs in an
        # executor thread, and calling back into the scheduler there deadlocks with a shutdown

    finished: queue.SimpleQueue[str] = queue.SimpleQueue()

    scheduler.add_listener(on_event, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    # APScheduler logs every run; every few seconds for the webhooks would drown the other jobs' lines.
    logging.getLogger("apscheduler.executors.default").addFilter(_not_the_webhooks_job)

    def on_signal(signum, _frame) -> None:
        log.info("received %s: finishing what is running, then stopping", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        scheduler.resume()
        log.info("scheduler started (time zone %s, jobs in %s)", settings.timezone, JOBS_TABLE)
        _log_next(scheduler, settings.zone)
        scheduler.add_job(
            resume_job,
            id="resume-at-start",
            jobstore="process",
            replace_existing=True,
            misfire_grace_time=None,
        )
        # Every few seconds, in this process's memory: in the shared store its next run time would be
        # written every few seconds, and a second scheduler could remove it under this one (see above).
        scheduler.add_job(
            webhooks_job,
            "interval",
            seconds=settings.webhook_interval_seconds,
            id="webhooks",
            jobstore="process",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )
        while not stop.wait(1.0):
            while not finished.empty():
                job = scheduler.get_job(finished.get())
                if job is not None and job.next_run_time is not None:
                    log.info("next %s %s", job.id, _local(job.next_run_time, settings.zone))
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("scheduler stopped")
    return 0


def _not_the_webhooks_job(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or "webhooks_job" not in record.getMessage()


def _log_next(scheduler: BackgroundScheduler, zone: ZoneInfo) -> None:
    for job_id, schedule, when in describe(scheduler, zone):
        if job_id not in ("resume-at-start", "webhooks"):
            log.info("next %-7s %s  (%s)", job_id, when, schedule)
