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
import random
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from newsletter import ledger
from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions import EditionError, issue_view
from newsletter.ledger_batches import Claimed
from newsletter.mail import OutgoingMessage
from newsletter.models import DeliveryStatus, Issue, IssueStatus, utcnow
from newsletter.outgoing_webhooks.outbox import issue_sent
from newsletter.providers.base import Failure, Provider, ProviderError, ReconcileUnsupported, SendResult
from newsletter.render import Renderer, RenderError
from newsletter.send_pacing import RateLimiter, backoff
from newsletter.send_report import SendAborted, SendReport
from newsletter.send_variants import IssueVariants

ProgressCallback = Callable[[int, int], None]
NO_MATCHING_CATEGORY = "nothing in the reader's categories this week"
LEASE_SECONDS = 120.0


class SendRefused(EditionError):
    """The send cannot start (the issue does not render, or is too big, or the provider cannot be
    used): it was refused before anything changed, and the issue is as it was."""


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
        self._cursor = ledger.ClaimCursor()  # one sender, one issue: claims resume where they left off
        self.variants: IssueVariants | None = None  # the issue as each reader gets it (`_variants_of`)
        self._handed = False  # has any message been handed to the provider in this run?
        self._fresh_keys: set[str] = set()  # batch keys this run claimed

    async def send(
        self,
        issue_id: int,
        *,
        on_progress: ProgressCallback | None = None,
        stop: threading.Event | None = None,
    ) -> SendReport:
        """Send what the ledger says is owed. Setting `stop` (a SIGTERM) ends the send after the
        batches in flight: the ledger stays consistent and a later run finishes the job.

        The lease comes first (a second sender is refused at once); then everything else that can
        refuse (rendering every readers' variant, the size limit, the provider's own set-up) runs
        before the issue or its ledger changes, and a failure before the first message is handed to
        the provider puts the issue and its ledger back as they were."""
        started = time.perf_counter()
        report = self._report_for(issue_id)
        if report.owed < 0:  # already sent: nothing to do
            report.owed = 0
            return report
        try:
            ledger.take_lease(self.engine, issue_id, self.identity, LEASE_SECONDS)
        except ledger.LeaseTaken as exc:  # another sender is at it: refused before any work
            raise EditionError(str(exc)) from exc
        try:
            await self.prepare(issue_id)
            total, before = self._open(issue_id, report)
            try:
                await self._run(issue_id, report, total, on_progress, stop, exclusive=True)
            except BaseException:
                if not self._handed:
                    ledger.undo_open(self.engine, issue_id, before, self.identity, self._fresh_keys)
                raise
        finally:
            ledger.release_lease(self.engine, issue_id, self.identity)
            report.seconds = time.perf_counter() - started
        if report.aborted:
            raise SendAborted(report.aborted, report)
        return report

    async def prepare(self, issue_id: int) -> None:
        """Everything that can refuse a send, with nothing changed yet: every variant the active
        readers will get renders within Gmail's size, and the provider can be used (its
        `preflight`, where it has one: the outbox checks that it can write its directory)."""
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id)
            week, tag = issue.week, issue.slug
        try:
            self._variants_of(issue_id).render_all()
        except (RenderError, EditionError) as exc:
            raise SendRefused(f"issue {week} cannot be sent: {exc}; nothing was changed") from exc
        preflight = getattr(self.provider, "preflight", None)
        if preflight is not None:
            try:
                await preflight(tag)
            except ProviderError as exc:
                raise SendRefused(f"the send of {week} cannot start: {exc}; nothing was changed") from exc

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
            raise SendAborted(report.aborted, report)
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
        queue is empty (or `stop` is set); the last sender to find nothing owed marks the issue sent.
        Progress counts only rows that reached an end state, never rows merely claimed."""

        def progress() -> None:
            if on_progress and total is not None:
                on_progress(min(report.settled, total), total)

        progress()
        await self._recover(issue_id, report)
        progress()
        halt = asyncio.Event()

        async def deliver_batches() -> None:
            while not halt.is_set():
                if stop is not None and stop.is_set():
                    report.stopped = True
                    return
                batch, suppressed = ledger.claim(
                    self.engine, issue_id, self.batch_size, self.identity, LEASE_SECONDS, self._cursor
                )
                report.suppressed.update(suppressed)
                if batch:
                    self._fresh_keys.add(batch[0].batch_key)
                try:
                    if batch:
                        await self._deliver(issue_id, batch, report)
                except SendAborted:
                    halt.set()
                    raise
                finally:
                    progress()
                if not batch:
                    return

        async with _lease_heartbeat(self, issue_id, exclusive):
            outcomes = await asyncio.gather(
                *(deliver_batches() for _ in range(self.settings.send_concurrency)), return_exceptions=True
            )
        for outcome in outcomes:
            if isinstance(outcome, SendAborted):
                report.aborted = report.aborted or str(outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        if report.aborted is None and not report.stopped:
            self._finish(issue_id)

    def _report_for(self, issue_id: int) -> SendReport:
        """The issue's report to start from; `owed` is -1 when it is sent already. Refuses a
        missing or cancelled issue."""
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id)
            if issue is None:
                raise EditionError(f"no issue with id {issue_id}")
            report = SendReport(week=issue.week)
            if issue.status == IssueStatus.CANCELLED:
                raise SendRefused(f"issue {issue.week} is cancelled; it will not be sent")
            if issue.status == IssueStatus.SENT:
                report.previously_sent = ledger.counts(session, issue_id).get(DeliveryStatus.SENT, 0)
                report.owed = -1
        return report

    def _open(self, issue_id: int, report: SendReport) -> tuple[int, ledger.BeforeSend]:
        """Write the ledger and mark the issue `sending` (under the lease): the first change of the
        issue's state. Returns the rows owed and the issue as it was before, for `undo_open`."""
        try:
            with session_scope(self.engine) as session:
                before = ledger.before_send(session, issue_id)
                counts = ledger.open_send(session, issue_id)
        except ledger.IssueCancelled as exc:
            raise SendRefused(str(exc)) from exc
        report.previously_sent = counts.get(DeliveryStatus.SENT, 0)
        report.owed = counts.get(DeliveryStatus.QUEUED, 0) + counts.get(DeliveryStatus.SENDING, 0)
        return report.owed, before

    # --- messages ------------------------------------------------------------------------------------

    def _variants_of(self, issue_id: int) -> IssueVariants:
        if self.variants is None or self.variants.issue_id != issue_id:
            self.variants = IssueVariants(self.engine, self.settings, self.renderer, issue_id)
        return self.variants

    def _messages(
        self, issue_id: int, batch: list[Claimed]
    ) -> tuple[list[tuple[Claimed, OutgoingMessage]], list[int], dict[str, list[int]]]:
        """(rows with their messages, rows whose categories have nothing this week, rows whose
        variant cannot be rendered by reason). A variant first met mid-send (a reader changed their
        categories) that does not render fails its own rows, never the whole send."""
        sendable, unmatched, unrenderable = [], [], {}
        for row in batch:
            try:
                mailer = self._variants_of(issue_id).mailer_for(row.categories)
            except (RenderError, EditionError) as exc:
                unrenderable.setdefault(f"cannot render this reader's issue: {exc}", []).append(
                    row.delivery_id
                )
                continue
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
                            tracked=row.tracked,
                        ),
                    )
                )
        return sendable, unmatched, unrenderable

    # --- one batch --------------------------------------------------------------------------------------

    async def _deliver(self, issue_id: int, batch: list[Claimed], report: SendReport) -> None:
        pending, unmatched, unrenderable = self._messages(issue_id, batch)
        if unmatched:
            ledger.mark(self.engine, unmatched, DeliveryStatus.SUPPRESSED, NO_MATCHING_CATEGORY)
            report.suppressed[NO_MATCHING_CATEGORY] += len(unmatched)
        for reason, ids in unrenderable.items():
            ledger.mark(self.engine, ids, DeliveryStatus.FAILED, reason)
            report.failed[reason[:200]] += len(ids)
        attempt = 0
        while pending:
            attempt += 1
            await self.rate.acquire(len(pending))
            self._handed = True  # from here on, the provider may have acted: no undo
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
                    # The provider took no request in all these tries, with back-off in between: it
                    # cannot be reached or is down. Failing these rows and going on would fail the
                    # whole list the same way; the send stops instead, the queue kept, as for a
                    # fatal error (a rerun, or the scheduler's resume job, finishes it).
                    ledger.mark(
                        self.engine, [row.delivery_id for row, _ in pending], DeliveryStatus.QUEUED, None
                    )
                    raise SendAborted(
                        f"{error} (the provider did not take a request in {attempt} attempt(s): it cannot "
                        "be reached or is down)"
                    ) from error
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

    async def _recover(self, issue_id: int, report: SendReport) -> None:
        """Rows a dead sender left `sending`: ask the provider which it accepted, requeue the rest.
        A provider that cannot answer now leaves its rows in flight for a later run; one that
        refuses us as a whole (a bad key) stops the send."""
        taken = ledger.take_over(self.engine, issue_id, self.identity, LEASE_SECONDS)
        for rows in taken.values():
            pending, unmatched, unrenderable = self._messages(issue_id, rows)
            ledger.mark(self.engine, unmatched, DeliveryStatus.SUPPRESSED, NO_MATCHING_CATEGORY)
            report.suppressed[NO_MATCHING_CATEGORY] += len(unmatched)
            try:
                accepted = await self.provider.reconcile([message for _, message in pending])
            except ReconcileUnsupported:
                accepted = (
                    {message.message_id: None for _, message in pending}
                    if self.settings.unknown_outcome == "assume-sent"
                    else {}
                )
            except ProviderError as error:
                if error.failure == Failure.FATAL:
                    raise SendAborted(str(error)) from error
                ledger.release_rows(self.engine, [row.delivery_id for row in rows], self.identity)
                continue
            # A variant that cannot render now: if it went out, the provider knows; if not, fail it.
            for reason, ids in unrenderable.items():
                ledger.mark(self.engine, ids, DeliveryStatus.FAILED, reason)
                report.failed[reason[:200]] += len(ids)
            done = [
                (row.delivery_id, accepted[message.message_id])
                for row, message in pending
                if message.message_id in accepted
            ]
            confirmed = ledger.mark_sent(self.engine, self.provider.name, done)
            report.recovered += confirmed
            report.reconciled += confirmed
            ledger.mark(
                self.engine,
                [row.delivery_id for row, message in pending if message.message_id not in accepted],
                DeliveryStatus.QUEUED,
                None,
            )

    def _finish(self, issue_id: int) -> None:
        """The issue is sent once no row is queued or in flight; failed rows stay for a retry.
        Only a `sending` issue becomes `sent`: one an editor cancelled meanwhile stays cancelled."""
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id, with_for_update=True)
            if issue.status != IssueStatus.SENDING:
                return
            counts = ledger.counts(session, issue_id)
            if counts.get(DeliveryStatus.QUEUED, 0) or counts.get(DeliveryStatus.SENDING, 0):
                return
            again = issue.sent_at is not None
            issue.status = IssueStatus.SENT
            issue.sent_at = issue.sent_at or utcnow()
            session.add(issue)
            self._tell_webhooks(session, issue, counts, again)

    def _tell_webhooks(self, session, issue: Issue, counts: dict[str, int], again: bool) -> None:
        """`issue.sent` with the ledger's summary, in the transaction that marks the issue sent."""
        try:
            subject = issue_view(session, issue, self.settings).subject
        except EditionError:
            subject = None
        issue_sent(
            session,
            issue,
            subject_line=subject,
            web_url=f"{self.settings.site_url}/issues/{issue.slug}",
            counts=counts,
            failures=ledger.failure_reasons(session, issue.id, limit=5),
            again=again,
        )


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
