"""What each of the scheduler's jobs does (`newsletter.scheduling` runs them on their crontabs).

  compose  the week's draft (Friday 12:00)           send    the approved issue (Monday 09:00)
  retry    failed deliveries of recent sends (hourly)  purge   signups never confirmed in time (daily)
  resume   sends interrupted by a stop or a crash (every ten minutes, and at start)
  retention  tracked-link hits past NEWSLETTER_HIT_RETENTION_DAYS folded into counts (daily)
  webhooks  outgoing webhooks due, every NEWSLETTER_WEBHOOK_INTERVAL_SECONDS (in the process's memory)
  sunset   with NEWSLETTER_SUNSET_ISSUES: silent readers asked, unanswered ones let go (daily)
The retry job also sends the welcome emails a failure left owed (newsletter.welcome).

Each job returns the line it logged, so a test or a caller reads what it did. A job takes no
arguments but the time: what it works on (settings, store, the stop flag) is the process's `Context`,
since the scheduler stores jobs by name, not by value.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import col, delete, select

from newsletter import editor_log, ledger
from newsletter.config import ConfigError, Settings
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
from newsletter.providers import Provider, make_provider
from newsletter.providers.base import log_send_failure, refused_result
from newsletter.quality import GateFailed, Report, check_issue
from newsletter.welcome import send_owed_welcomes

log = logging.getLogger("newsletter.scheduler")
T = TypeVar("T")


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


def logged(message: str, level: int = logging.INFO) -> str:
    """A job's outcome: logged at `level`, and returned as the job's result."""
    log.log(level, message)
    return message


def with_provider(settings: Settings, use: Callable[[Provider], Awaitable[T]]) -> T:
    """`use(provider)` on a provider made for this one call, closed whatever happens."""

    async def go() -> T:
        provider = make_provider(settings)
        try:
            return await use(provider)
        finally:
            await provider.aclose()

    return asyncio.run(go())


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
                    return logged(
                        f"{message}; NOT approved (NEWSLETTER_AUTO_APPROVE): {refusal}", logging.ERROR
                    )
                message += ", approved (NEWSLETTER_AUTO_APPROVE)"
    return logged(message)


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
            return logged("send: no issue for this week or last; nothing to send")
        if issue.status == IssueStatus.SENT:
            return logged(f"send {issue.week}: already sent")
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
        return logged(
            f"send {week}: NOT SENT - the issue fails {len(checks.errors)} quality check(s): "
            f"{_findings(checks)}. Fix them (`newsletter issue check --week {week}`, `newsletter preview`), "
            f"or send it anyway with `newsletter issue send --week {week} --force`.",
            logging.ERROR,
        )
    _record(ctx, "send", issue_id, "the scheduled send")
    return _run_send(ctx, issue_id, week)


def _record(ctx: Context, action: str, issue_id: int, detail: str) -> None:
    """The scheduler's own change, as an editor event (the send records it before it starts)."""
    with session_scope(ctx.engine) as session:
        editor_log.record(session, editor_log.SCHEDULER, action, issue_id=issue_id, detail=detail)


def _run_send(ctx: Context, issue_id: int, week: str) -> str:
    if ctx.settings.sends_through_workers:  # several machines: the workers do the sending
        return _open_for_workers(ctx, issue_id, week)
    try:
        report = with_provider(
            ctx.settings,
            lambda provider: Sender(ctx.engine, ctx.settings, provider).send(issue_id, stop=ctx.stop),
        )
    except SendRefused as exc:  # it does not render, is too big, the provider cannot be used
        return logged(f"send {week}: NOT SENT - {exc}", logging.ERROR)
    except EditionError as exc:  # e.g. another process holds the lease
        return logged(f"send {week}: not sent by this process: {exc}", logging.WARNING)
    except SendAborted as exc:
        return logged(f"send {week}: stopped by the provider: {exc}; the rest stays queued", logging.ERROR)
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
    try:
        with_provider(
            ctx.settings, lambda provider: Sender(ctx.engine, ctx.settings, provider).prepare(issue_id)
        )
        with session_scope(ctx.engine) as session:
            owed = ledger.open_send(session, issue_id).get(DeliveryStatus.QUEUED, 0)
    except (SendRefused, ledger.IssueCancelled, ConfigError) as exc:
        return logged(f"send {week}: NOT SENT - {exc}", logging.ERROR)
    return logged(f"send {week}: marked for sending; {owed} deliveries queued for `newsletter worker`")


def _alert_editors(ctx: Context, week: str) -> None:
    """Where editors are configured, email them the preview link of the unapproved issue."""
    editors = ctx.settings.editor_email_list
    if not editors:
        return
    notices = Notices(ctx.settings)
    messages = [editor_alert(notices, week=week, email=address) for address in editors]

    async def send(provider: Provider) -> None:
        for result in await provider.send_batch(messages):
            if not result.accepted:
                raise refused_result(result)

    try:
        with_provider(ctx.settings, send)
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
    return logged(message)


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
    return logged("; ".join(done) or "resume: no interrupted send")


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
    return logged(f"purge: {len(stale)} expired pending signup(s) deleted")


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
    return logged(
        f"retention: {done.hits} hit(s) older than {ctx.settings.hit_retention_days} days folded into the "
        f"counts of {done.issues} issue(s)"
    )


def sunset_job(now: datetime | None = None) -> str:
    """With NEWSLETTER_SUNSET_ISSUES: silent readers asked once, unanswered ones let go (see
    newsletter.sunset)."""
    from newsletter.sunset import run as run_sunset

    ctx = context()
    return logged(run_sunset(ctx.engine, ctx.settings, make_provider, now).summary())
