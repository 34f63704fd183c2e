"""The scheduler: the jobs' triggers and its loop (APScheduler 3.x, jobs persisted in the store).

Each job of `newsletter.jobs` runs on a five-field crontab in NEWSLETTER_TIMEZONE, each its own
setting; the webhooks job runs every NEWSLETTER_WEBHOOK_INTERVAL_SECONDS, in the process's memory.

Sending an issue twice is impossible by construction, not by care: the ledger sends each reader once
and a send holds a lease on the issue that a second scheduler cannot take. A send run missed by more
than NEWSLETTER_SEND_GRACE_HOURS is not made up for (stale news); several missed runs coalesce into one.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.crontab import parse_cron
from newsletter.jobs import (
    Context,
    compose_job,
    purge_job,
    resume_job,
    retention_job,
    retry_job,
    send_job,
    set_context,
    sunset_job,
    webhooks_job,
)
from newsletter.models import utcnow

log = logging.getLogger("newsletter.scheduler")
JOBS_TABLE = "apscheduler_jobs"
# The store keeps each job as a reference to its function, `newsletter.scheduling:<job>`, written
# when the jobs lived in this module. It stays that name: schedulers of several versions may share a
# store, and one that cannot find a row's function deletes the row. The imports above resolve it.
STORED_AS = "newsletter.scheduling"


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
            f"{STORED_AS}:{function.__name__}",
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
