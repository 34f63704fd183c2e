"""The delivery ledger and the send loop.

The ledger holds one row per (issue, subscriber), written before anything is sent, and each row moves
queued -> sending -> sent | failed | suppressed. A batch is marked `sending` and committed before its
request goes out, so after a crash the rows whose outcome is unknown are exactly the `sending` ones;
they are reconciled with the provider before anything is sent again. A finished send sends nothing.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from sqlalchemy import and_, exists, func, insert, literal, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions import EditionError, issue_view, variant_comparisons
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from newsletter.personalise import IssueMailer
from newsletter.providers.base import Provider, SendResult
from newsletter.render import Renderer

ProgressCallback = Callable[[int, int], None]


@dataclass
class SendReport:
    """What one run of `send` did, for the closing summary."""

    week: str
    sent: int = 0
    suppressed: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    reconciled: int = 0
    previously_sent: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


def enqueue(session: Session, issue_id: int) -> int:
    """Ledger rows for every active subscriber who has none for this issue yet; returns how many."""
    now = utcnow()
    already = exists().where(and_(Delivery.issue_id == issue_id, Delivery.subscriber_id == Subscriber.id))
    source = select(
        literal(issue_id),
        Subscriber.id,
        literal(DeliveryStatus.QUEUED.value),
        literal(0),
        literal(now),
        literal(now),
    ).where(Subscriber.status == SubscriberStatus.ACTIVE, ~already, not_paused(now))
    columns = ["issue_id", "subscriber_id", "status", "attempts", "created_at", "updated_at"]
    result = session.execute(insert(Delivery).from_select(columns, source))
    return result.rowcount or 0


def not_paused(now):
    return or_(col(Subscriber.paused_until).is_(None), col(Subscriber.paused_until) <= now)


class Claimed(NamedTuple):
    delivery_id: int
    subscriber_id: int
    email: str
    categories: str | None


NO_MATCHING_CATEGORY = "nothing in the reader's categories this week"


def ledger_counts(session: Session, issue_id: int) -> dict[str, int]:
    query = (
        select(Delivery.status, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.status)
    )
    return {status: count for status, count in session.exec(query)}


class Sender:
    """Sends one issue to everyone in its ledger through one provider."""

    def __init__(
        self, engine: Engine, settings: Settings, provider: Provider, renderer: Renderer | None = None
    ):
        self.engine = engine
        self.settings = settings
        self.provider = provider
        self.renderer = renderer or Renderer()
        self.batch_size = min(settings.send_batch_size, provider.max_batch)

    async def send(self, issue_id: int, *, on_progress: ProgressCallback | None = None) -> SendReport:
        started = time.perf_counter()
        with session_scope(self.engine) as session:
            issue = session.get(Issue, issue_id)
            if issue is None:
                raise EditionError(f"no issue with id {issue_id}")
            report = SendReport(week=issue.week)
            if issue.status == IssueStatus.CANCELLED:
                raise EditionError(f"issue {issue.week} is cancelled; it will not be sent")
            if issue.status == IssueStatus.SENT:
                report.previously_sent = ledger_counts(session, issue_id).get(DeliveryStatus.SENT, 0)
                return report
            now = utcnow()
            issue.approved_at = issue.approved_at or now
            issue.send_started_at = issue.send_started_at or now
            issue.status = IssueStatus.SENDING
            session.add(issue)
            enqueue(session, issue_id)
            counts = ledger_counts(session, issue_id)
            report.previously_sent = counts.get(DeliveryStatus.SENT, 0)
        self._mailers: dict[str | None, IssueMailer | None] = {}
        self._rendered: dict[tuple[int, ...], IssueMailer] = {}
        main = self._mailer_for(issue_id, None)
        total = counts.get(DeliveryStatus.QUEUED, 0) + counts.get(DeliveryStatus.SENDING, 0)
        done = 0
        if on_progress:
            on_progress(done, total)
        report.reconciled = await self._reconcile(issue_id, main)
        while batch := self._claim(issue_id):
            sendable, unmatched = [], []
            for row in batch:
                mailer = self._mailer_for(issue_id, row.categories)
                if mailer is None:
                    unmatched.append(row.delivery_id)
                else:
                    message = mailer.message(
                        delivery_id=row.delivery_id, subscriber_id=row.subscriber_id, email=row.email
                    )
                    sendable.append((row, message))
            if unmatched:
                self._suppress(unmatched, NO_MATCHING_CATEGORY)
                report.suppressed += len(unmatched)
            if sendable:
                results = await self.provider.send_batch([message for _, message in sendable])
                self._record([row for row, _ in sendable], results, report)
            done += len(batch)
            if on_progress:
                on_progress(done, total)
        self._finish(issue_id)
        report.seconds = time.perf_counter() - started
        return report

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

    async def _reconcile(self, issue_id: int, mailer: IssueMailer) -> int:
        """Rows left `sending` by a crash: ask the provider which it accepted, requeue the rest."""
        with session_scope(self.engine) as session:
            query = (
                select(Delivery.id, Delivery.subscriber_id, Subscriber.email)
                .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
                .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SENDING)
            )
            stale = list(session.exec(query))
        if not stale:
            return 0
        messages = {d: mailer.message(delivery_id=d, subscriber_id=s, email=e) for d, s, e in stale}
        accepted = await self.provider.reconcile(list(messages.values()))
        now = utcnow()
        rows = []
        for delivery_id, message in messages.items():
            if message.message_id in accepted:
                rows.append(
                    {
                        "id": delivery_id,
                        "status": DeliveryStatus.SENT,
                        "sent_at": now,
                        "updated_at": now,
                        "provider": self.provider.name,
                        "provider_message_id": accepted[message.message_id],
                    }
                )
            else:
                rows.append({"id": delivery_id, "status": DeliveryStatus.QUEUED, "updated_at": now})
        with session_scope(self.engine) as session:
            session.execute(update(Delivery), rows)
        return sum(1 for row in rows if row["status"] == DeliveryStatus.SENT)

    def _claim(self, issue_id: int) -> list[Claimed]:
        """The next queued rows, marked `sending` and committed before any request goes out.

        Rows whose reader is no longer active or has paused since the ledger was written are
        suppressed here, so unsubscribing stops the very next batch.
        """
        while True:
            with session_scope(self.engine) as session:
                query = (
                    select(
                        Delivery.id,
                        Delivery.subscriber_id,
                        Subscriber.email,
                        Subscriber.categories,
                        Subscriber.status,
                        Subscriber.paused_until,
                    )
                    .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id)
                    .where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.QUEUED)
                    .order_by(Delivery.id)
                    .limit(self.batch_size)
                )
                rows = list(session.exec(query))
                if not rows:
                    return []
                now = utcnow()
                left = [r[0] for r in rows if r[4] != SubscriberStatus.ACTIVE]
                paused = [r[0] for r in rows if r[4] == SubscriberStatus.ACTIVE and r[5] and r[5] > now]
                batch = [
                    Claimed(*r[:4])
                    for r in rows
                    if r[4] == SubscriberStatus.ACTIVE and not (r[5] and r[5] > now)
                ]
                for ids, reason in ((left, "reader no longer active"), (paused, "reader paused")):
                    if ids:
                        session.execute(
                            update(Delivery)
                            .where(col(Delivery.id).in_(ids))
                            .values(status=DeliveryStatus.SUPPRESSED, last_error=reason, updated_at=now)
                        )
                if batch:
                    session.execute(
                        update(Delivery)
                        .where(col(Delivery.id).in_([b.delivery_id for b in batch]))
                        .values(status=DeliveryStatus.SENDING, attempts=Delivery.attempts + 1, updated_at=now)
                    )
                    return batch

    def _suppress(self, delivery_ids: list[int], reason: str) -> None:
        with session_scope(self.engine) as session:
            session.execute(
                update(Delivery)
                .where(col(Delivery.id).in_(delivery_ids))
                .values(status=DeliveryStatus.SUPPRESSED, last_error=reason, updated_at=utcnow())
            )

    def _record(self, batch: list[Claimed], results: list[SendResult], report: SendReport) -> None:
        if len(results) != len(batch):
            raise RuntimeError(
                f"{self.provider.name} answered {len(results)} results for {len(batch)} messages"
            )
        now = utcnow()
        rows = []
        for claimed, result in zip(batch, results, strict=True):
            row = {"id": claimed.delivery_id, "updated_at": now, "provider": self.provider.name}
            if result.accepted:
                row |= {
                    "status": DeliveryStatus.SENT,
                    "sent_at": now,
                    "provider_message_id": result.provider_message_id,
                    "last_error": None,
                }
                report.sent += 1
            elif result.permanent:
                row |= {"status": DeliveryStatus.SUPPRESSED, "last_error": result.error}
                report.suppressed += 1
            else:
                row |= {"status": DeliveryStatus.FAILED, "last_error": result.error}
                report.failed[result.error or "unknown error"] += 1
            rows.append(row)
        with session_scope(self.engine) as session:
            session.execute(update(Delivery), rows)

    def _finish(self, issue_id: int) -> None:
        """The issue is sent once no row is queued or in flight; failed rows stay for a retry."""
        with session_scope(self.engine) as session:
            counts = ledger_counts(session, issue_id)
            if counts.get(DeliveryStatus.QUEUED, 0) or counts.get(DeliveryStatus.SENDING, 0):
                return
            issue = session.get(Issue, issue_id)
            issue.status = IssueStatus.SENT
            issue.sent_at = utcnow()
            session.add(issue)
