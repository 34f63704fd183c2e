"""The send: from the ledger to the provider with bounded concurrency, retries, a rate limit, and a
reconciliation step wherever an outcome is unknown.

Every active reader gets the issue exactly once, whatever the network, the provider or the machine
does, because:

* a batch is committed as `sending`, under its own key, before its request goes out;
* an answer that may hide a success (a timeout, a dropped connection, a 5xx) is reconciled with the
  provider before anything is sent again, and so are the rows a killed process left `sending`;
* a rerun sends only what the ledger says is still owed, and only one process sends an issue at a
  time (the send lease).

Where a provider offers no way to reconcile (SendGrid, SMTP) the window is the batches in flight at
the moment of a crash; NEWSLETTER_UNKNOWN_OUTCOME says whether those are sent again or taken as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Engine

from newsletter import ledger
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions import EditionError, issue_view, variant_comparisons
from newsletter.ledger import Claimed
from newsletter.mail import OutgoingMessage
from newsletter.models import DeliveryStatus, Issue, IssueStatus, utcnow
from newsletter.personalise import IssueMailer
from newsletter.providers.base import Failure, Provider, ProviderError, ReconcileUnsupported, SendResult
from newsletter.render import Renderer

ProgressCallback = Callable[[int, int], None]
NO_MATCHING_CATEGORY = "nothing in the reader's categories this week"
LEASE_SECONDS = 120.0
BACKOFF_BASE, BACKOFF_CAP = 0.5, 30.0


class SendAborted(RuntimeError):
    """The provider refused the send as a whole (bad key, unverified sender...): the rest of the queue
    is kept for a later `newsletter issue send`. The message says why."""


@dataclass
class SendReport:
    """What one run of `send` did, for the closing summary."""

    week: str
    sent: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    reconciled: int = 0
    retries: int = 0
    stopped: bool = False  # a shutdown asked it to stop: in-flight batches finished, the rest queued
    previously_sent: int = 0
    seconds: float = 0.0
    aborted: str | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def suppressed_total(self) -> int:
        return sum(self.suppressed.values())


class RateLimiter:
    """A token bucket in messages per second; `acquire(n)` waits until n messages may go."""

    def __init__(self, per_second: float):
        self.rate = per_second
        self.tokens = per_second
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self, count: int) -> None:
        if not self.rate:
            return
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(max(self.rate, count), self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= count:
                    self.tokens -= count
                    return
                await asyncio.sleep((count - self.tokens) / self.rate)


def backoff(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Exponential back-off with full jitter; a provider's Retry-After is a floor."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    delay = rng.uniform(0, ceiling)
    return max(delay, retry_after) if retry_after is not None else delay


class Sender:
    """Sends one issue to everyone in its ledger through one provider."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        provider: Provider,
        renderer: Renderer | None = None,
        *,
        identity: str | None = None,
        rng: random.Random | None = None,
    ):
        self.engine = engine
        self.settings = settings
        self.provider = provider
        self.renderer = renderer or Renderer()
        self.batch_size = min(settings.send_batch_size or provider.default_batch, provider.max_batch)
        self.identity = identity or ledger.sender_identity()
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self.rate = RateLimiter(settings.send_rate)
        self._mailers: dict[str | None, IssueMailer | None] = {}
        self._cursor = ledger.ClaimCursor()  # one sender, one issue: claims resume where they left off
        self._rendered: dict[tuple[int, ...], IssueMailer] = {}

    async def send(
        self,
        issue_id: int,
        *,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> SendReport:
        """Send what the ledger says is owed. Setting `stop` (a SIGTERM) ends the send after the
        batches in flight: the ledger stays consistent and a later run finishes the job."""
        started = time.perf_counter()
        report, total = self._begin(issue_id)
        if total is None:  # already sent: nothing to do
            return report
        try:
            await self._run(issue_id, report, total, on_progress, stop, exclusive=True)
        finally:
            ledger.release_lease(self.engine, issue_id, self.identity)
            report.seconds = time.perf_counter() - started
        if report.aborted:
            raise SendAborted(report.aborted)
        return report

    async def work(self, issue_id: int, *, stop: threading.Event | None = None) -> SendReport:
        """A sender worker's share of an issue already marked `sending`: batches are claimed
        alongside any number of other workers, and rows of a dead worker are taken over."""
        started = time.perf_counter()
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id)
            report = SendReport(week=issue.week)
            if issue.status != IssueStatus.SENDING:
                return report
        try:
            await self._run(issue_id, report, None, None, stop, exclusive=False)
        finally:
            report.seconds = time.perf_counter() - started
        if report.aborted:
            raise SendAborted(report.aborted)
        return report

    async def _run(
        self,
        issue_id: int,
        report: SendReport,
        total: int | None,
        on_progress: ProgressCallback | None,
        stop: threading.Event | None,
        *,
        exclusive: bool,
    ) -> None:
        """Reconcile what dead senders left in flight, then claim and deliver batches until the
        queue is empty (or `stop` is set); the last sender to find nothing owed marks the issue sent."""
        done = 0
        if on_progress and total is not None:
            on_progress(done, total)
        report.reconciled = await self._recover(issue_id, report)
        halt = asyncio.Event()

        async def deliver_batches() -> None:
            nonlocal done
            while not halt.is_set():
                if stop is not None and stop.is_set():
                    report.stopped = True
                    return
                batch, suppressed = ledger.claim(
                    self.engine, issue_id, self.batch_size, self.identity, LEASE_SECONDS, self._cursor
                )
                report.suppressed.update(suppressed)
                if not batch:
                    return
                try:
                    await self._deliver(issue_id, batch, report)
                except SendAborted:
                    halt.set()
                    raise
                finally:
                    done += len(batch) + sum(suppressed.values())
                    if on_progress and total is not None:
                        on_progress(done, total)

        async with _lease_heartbeat(self, issue_id, exclusive):
            outcomes = await asyncio.gather(
                *(deliver_batches() for _ in range(self.settings.send_concurrency)), return_exceptions=True
            )
        for outcome in outcomes:
            if isinstance(outcome, SendAborted):
                report.aborted = str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if report.aborted is None and not report.stopped:
            self._finish(issue_id)

    def _begin(self, issue_id: int) -> tuple[SendReport, int | None]:
        """Check the issue, take the lease, write the ledger; (report, rows to send) or (report, None)."""
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id)
            if issue is None:
                raise EditionError(f"no issue with id {issue_id}")
            report = SendReport(week=issue.week)
            if issue.status == IssueStatus.CANCELLED:
                raise EditionError(f"issue {issue.week} is cancelled; it will not be sent")
            if issue.status == IssueStatus.SENT:
                report.previously_sent = ledger.counts(session, issue_id).get(DeliveryStatus.SENT, 0)
                return report, None
        try:
            ledger.take_lease(self.engine, issue_id, self.identity, LEASE_SECONDS)
        except ledger.LeaseTaken as exc:
            raise EditionError(str(exc)) from exc
        with session_scope(self.engine) as session:
            counts = ledger.open_send(session, issue_id)
            report.previously_sent = counts.get(DeliveryStatus.SENT, 0)
        return report, counts.get(DeliveryStatus.QUEUED, 0) + counts.get(DeliveryStatus.SENDING, 0)

    # --- messages ------------------------------------------------------------------------------------

    def _mailer_for(self, issue_id: int, categories: str | None) -> IssueMailer | None:
        """The compiled issue for readers with these categories (None: all), or None if the week has
        nothing in them. Rendered once per distinct set of comparisons, however many readers share it."""
        if categories in self._mailers:
            return self._mailers[categories]
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id)
            chosen = frozenset(json.loads(categories)) if categories else None
            comparisons = variant_comparisons(session, issue, self.settings, chosen)
            key = tuple(c.id for c in comparisons)
            mailer = self._rendered.get(key) if comparisons else None
            if comparisons and mailer is None:
                rendered = self.renderer.render_issue(issue_view(session, issue, self.settings, comparisons))
                expires = issue.send_started_at + timedelta(days=self.settings.link_token_days)
                mailer = IssueMailer(
                    rendered, self.settings, tag=issue.slug, expires_at=int(expires.timestamp())
                )
                self._rendered[key] = mailer
        self._mailers[categories] = mailer
        return mailer

    def _messages(
        self, issue_id: int, batch: list[Claimed]
    ) -> tuple[list[tuple[Claimed, OutgoingMessage]], list[int]]:
        sendable, unmatched = [], []
        for row in batch:
            mailer = self._mailer_for(issue_id, row.categories)
            if mailer is None:
                unmatched.append(row.delivery_id)
            else:
                sendable.append(
                    (
                        row,
                        mailer.message(
                            delivery_id=row.delivery_id,
                            subscriber_id=row.subscriber_id,
                            email=row.email,
                            batch=row.batch_key,
                        ),
                    )
                )
        return sendable, unmatched

    # --- one batch --------------------------------------------------------------------------------------

    async def _deliver(self, issue_id: int, batch: list[Claimed], report: SendReport) -> None:
        pending, unmatched = self._messages(issue_id, batch)
        if unmatched:
            ledger.mark(self.engine, unmatched, DeliveryStatus.SUPPRESSED, NO_MATCHING_CATEGORY)
            report.suppressed[NO_MATCHING_CATEGORY] += len(unmatched)
        attempt = 0
        while pending:
            attempt += 1
            await self.rate.acquire(len(pending))
            try:
                results = await self.provider.send_batch([message for _, message in pending])
            except ProviderError as error:
                if error.completed:  # earlier requests of this batch went through: record, never resend
                    done = sorted(error.completed)
                    self._record([pending[i] for i in done], [error.completed[i] for i in done], report)
                    pending = [item for i, item in enumerate(pending) if i not in error.completed]
                if error.failure == Failure.FATAL:
                    ledger.mark(
                        self.engine, [row.delivery_id for row, _ in pending], DeliveryStatus.QUEUED, None
                    )
                    raise SendAborted(str(error)) from error
                if error.failure == Failure.AMBIGUOUS:
                    pending = await self._settle(pending, report)
                    if not pending:
                        return
                if attempt >= self.settings.send_max_attempts:
                    ledger.mark(
                        self.engine,
                        [row.delivery_id for row, _ in pending],
                        DeliveryStatus.FAILED,
                        str(error),
                        self.provider.name,
                    )
                    report.failed[_short(error)] += len(pending)
                    return
                report.retries += 1
                await asyncio.sleep(backoff(attempt, error.retry_after, self.rng))
                continue
            self._record(pending, results, report)
            return

    async def _settle(
        self, pending: list[tuple[Claimed, OutgoingMessage]], report: SendReport
    ) -> list[tuple[Claimed, OutgoingMessage]]:
        """After an ambiguous failure: record what the provider did accept; return what is still owed."""
        try:
            accepted = await self.provider.reconcile([message for _, message in pending])
        except ReconcileUnsupported:
            if self.settings.unknown_outcome == "assume-sent":
                report.sent += ledger.mark_sent(
                    self.engine,
                    self.provider.name,
                    [(row.delivery_id, None) for row, _ in pending],
                    note="outcome unknown; assumed sent",
                )
                return []
            return pending
        except ProviderError:
            return pending  # cannot tell now: keep the rows and let the retry loop try again
        done = [
            (row.delivery_id, accepted[message.message_id])
            for row, message in pending
            if message.message_id in accepted
        ]
        report.sent += ledger.mark_sent(self.engine, self.provider.name, done)
        report.reconciled += len(done)
        return [(row, message) for row, message in pending if message.message_id not in accepted]

    def _record(
        self, pending: list[tuple[Claimed, OutgoingMessage]], results: list[SendResult], report: SendReport
    ) -> None:
        if len(results) != len(pending):
            raise RuntimeError(
                f"{self.provider.name} answered {len(results)} results for {len(pending)} messages"
            )
        sent, permanent, failed = [], [], {}
        for (row, _), result in zip(pending, results, strict=True):
            if result.accepted:
                sent.append((row.delivery_id, result.provider_message_id))
            elif result.permanent:
                permanent.append((row.delivery_id, row.subscriber_id, result.error or "permanent failure"))
            else:
                failed.setdefault(result.error or "unknown error", []).append(row.delivery_id)
        report.sent += ledger.mark_sent(self.engine, self.provider.name, sent)
        ledger.suppress_readers(self.engine, permanent, f"{self.provider.name} send")
        if permanent:
            report.suppressed["permanent error for the address"] += len(permanent)
        for reason, ids in failed.items():
            ledger.mark(self.engine, ids, DeliveryStatus.FAILED, reason, self.provider.name)
            report.failed[reason] += len(ids)

    # --- after a crash ------------------------------------------------------------------------------

    async def _recover(self, issue_id: int, report: SendReport) -> int:
        """Rows a dead sender left `sending`: ask the provider which it accepted, requeue the rest."""
        confirmed = 0
        taken = ledger.take_over(self.engine, issue_id, self.identity, LEASE_SECONDS)
        for rows in taken.values():
            pending, unmatched = self._messages(issue_id, rows)
            ledger.mark(self.engine, unmatched, DeliveryStatus.SUPPRESSED, NO_MATCHING_CATEGORY)
            try:
                accepted = await self.provider.reconcile([message for _, message in pending])
            except ReconcileUnsupported:
                accepted = (
                    {message.message_id: None for _, message in pending}
                    if self.settings.unknown_outcome == "assume-sent"
                    else {}
                )
            done = [
                (row.delivery_id, accepted[message.message_id])
                for row, message in pending
                if message.message_id in accepted
            ]
            confirmed += ledger.mark_sent(self.engine, self.provider.name, done)
            ledger.mark(
                self.engine,
                [row.delivery_id for row, message in pending if message.message_id not in accepted],
                DeliveryStatus.QUEUED,
                None,
            )
        return confirmed

    def _finish(self, issue_id: int) -> None:
        """The issue is sent once no row is queued or in flight; failed rows stay for a retry."""
        with session_scope(self.engine) as session:
            counts = ledger.counts(session, issue_id)
            if counts.get(DeliveryStatus.QUEUED, 0) or counts.get(DeliveryStatus.SENDING, 0):
                return
            issue = session.get(Issue, issue_id)
            issue.status = IssueStatus.SENT
            issue.sent_at = issue.sent_at or utcnow()
            session.add(issue)


def _short(error: ProviderError) -> str:
    return str(error)[:200]


@contextlib.asynccontextmanager
async def _lease_heartbeat(sender: Sender, issue_id: int, exclusive: bool):
    """Keep the leases alive while batches are slow (a long back-off, a slow provider): on the rows
    in flight, and on the issue when this is the one exclusive (inline) sender."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 4)
            ledger.renew_rows(sender.engine, issue_id, sender.identity, LEASE_SECONDS)
            if exclusive:
                ledger.renew_lease(sender.engine, issue_id, sender.identity, LEASE_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
