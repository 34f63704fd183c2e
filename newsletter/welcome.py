"""The welcome email: owed from a reader's confirmation, sent once, never lost.

The confirmation's POST marks a welcome owed (`owe_welcome`) in the same transaction that makes the
reader active, unless one went out to them within a year: leaving and confirming again does not bring
a second. After that commit the web app hands it to the provider in a background task, so a slow or
failing provider can never fail or slow the confirmation. Whoever sends it claims it first with a
conditional UPDATE (a ten-minute lease), so the web app and the scheduler never both send it; when
the provider takes it, `sent_at` is set, the debt cleared and a `welcomed` event recorded. A failure
leaves it owed, not before a short pause: the scheduler's `retry` job sends what is owed
(`send_owed_welcomes`) for up to seven days after the confirmation. Later than that the welcome
would greet a reader who has had issues already, so it is dropped with a warning; so is one whose
address the provider refuses for good. The message id is fixed by the confirmation, so a retry after
an unknown outcome replaces the outbox's file and is the same request to an idempotent provider.

NEWSLETTER_WELCOME=false: nothing is owed and nothing is sent. Readers the list owner adds (`subscribers
add`, imports) confirmed nothing and get no welcome.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions import EditionError, issue_view
from newsletter.letters import LatestIssue, Letters, WelcomeFor
from newsletter.mail import OutgoingMessage
from newsletter.models import Issue, IssueStatus, Subscriber, SubscriberStatus, WelcomeMail, utcnow
from newsletter.providers.base import Provider, ProviderError, SendResult
from newsletter.subscriptions import chosen_categories, record_event

log = logging.getLogger("newsletter.welcome")
WELCOME_EVERY = timedelta(days=365)  # a reader who confirms again within a year is not welcomed again
LEASE = timedelta(minutes=10)  # a claimed welcome is left alone this long by other senders
RETRY_PAUSE = timedelta(minutes=20)  # after a failure, the earliest next try
GIVE_UP = timedelta(days=7)  # a welcome later than this would greet a reader who had issues already


def owe_welcome(session: Session, subscriber_id: int, now: datetime | None = None) -> bool:
    """At confirmation, in its transaction: owe the reader a welcome unless one went out within a
    year (or one is owed already). True when one is owed."""
    now = now or utcnow()
    row = session.get(WelcomeMail, subscriber_id)
    if row is None:
        session.add(WelcomeMail(subscriber_id=subscriber_id, due_at=now))
        return True
    if row.due_at is not None:
        return True
    if row.sent_at is not None and row.sent_at > now - WELCOME_EVERY:
        return False
    row.due_at, row.claimed_until, row.attempts, row.last_error = now, None, 0, None
    session.add(row)
    return True


def claim(session: Session, subscriber_id: int, now: datetime) -> WelcomeFor | None:
    """Take the reader's owed welcome for this process (None: nothing owed, or another holds it).
    A reader who left or was erased since is owed nothing any more."""
    claimed = session.execute(
        update(WelcomeMail)
        .where(
            col(WelcomeMail.subscriber_id) == subscriber_id,
            col(WelcomeMail.due_at).is_not(None),
            or_(col(WelcomeMail.claimed_until).is_(None), col(WelcomeMail.claimed_until) <= now),
        )
        .values(claimed_until=now + LEASE, attempts=WelcomeMail.attempts + 1)
    ).rowcount
    if not claimed:
        return None
    row = session.get(WelcomeMail, subscriber_id)
    session.refresh(row)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status != SubscriberStatus.ACTIVE or subscriber.email is None:
        row.due_at, row.claimed_until, row.last_error = None, None, "the reader left before it went out"
        session.add(row)
        return None
    return WelcomeFor(subscriber_id, subscriber.email, chosen_categories(subscriber), row.due_at)


def latest_issue(session: Session, settings: Settings) -> LatestIssue | None:
    """The newest sent issue, for the welcome's "latest issue" line."""
    issue = session.exec(
        select(Issue).where(Issue.status == IssueStatus.SENT).order_by(col(Issue.sent_at).desc())
    ).first()
    if issue is None:
        return None
    try:
        view = issue_view(session, issue, settings)
    except EditionError:
        return None
    return LatestIssue(view.slug, view.subject)


def owed(session: Session, now: datetime) -> list[int]:
    """Readers whose welcome is owed and free to send now. Those owed for longer than GIVE_UP are
    dropped here, with a warning."""
    stale = list(
        session.exec(
            select(WelcomeMail.subscriber_id).where(
                col(WelcomeMail.due_at).is_not(None), col(WelcomeMail.due_at) < now - GIVE_UP
            )
        )
    )
    if stale:
        session.execute(
            update(WelcomeMail)
            .where(col(WelcomeMail.subscriber_id).in_(stale))
            .values(due_at=None, claimed_until=None, last_error="not sent within seven days; dropped")
        )
        log.warning("%d welcome email(s) could not be sent within seven days and were dropped", len(stale))
    return list(
        session.exec(
            select(WelcomeMail.subscriber_id)
            .where(
                col(WelcomeMail.due_at).is_not(None),
                or_(col(WelcomeMail.claimed_until).is_(None), col(WelcomeMail.claimed_until) <= now),
            )
            .order_by(WelcomeMail.due_at)
        )
    )


def _record(session: Session, subscriber_id: int, result: SendResult | str, now: datetime) -> str:
    """What became of one handed-over welcome: `sent`, `failed` (owed still) or `dropped`."""
    row = session.get(WelcomeMail, subscriber_id)
    if row is None:
        return "dropped"
    if isinstance(result, SendResult) and result.accepted:
        row.sent_at, row.due_at, row.claimed_until, row.last_error = now, None, None, None
        session.add(row)
        subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is not None:
            record_event(session, subscriber, "welcomed", source="welcome email", at=now)
        return "sent"
    error = result if isinstance(result, str) else (result.error or "refused by the provider")
    row.last_error = error[:500]
    if isinstance(result, SendResult) and result.permanent:
        row.due_at, row.claimed_until = None, None
        session.add(row)
        return "dropped"
    row.claimed_until = now + RETRY_PAUSE
    session.add(row)
    return "failed"


async def deliver(
    engine: Engine,
    settings: Settings,
    letters: Letters,
    provider: Provider,
    subscriber_ids: Iterable[int],
    now: datetime | None = None,
) -> Counter:
    """Claim, build and send the welcomes owed to these readers, and record what happened. Returns
    counts of sent, failed (still owed), dropped. A provider that fails raises nothing here: the
    failure is logged and the welcome stays owed for the retry."""
    outcome: Counter = Counter()
    ids = list(subscriber_ids)
    size = max(1, min(provider.default_batch, provider.max_batch))
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        messages = await asyncio.to_thread(_prepare, engine, settings, letters, chunk, now or utcnow())
        if not messages:
            continue
        try:
            results: Sequence[SendResult | str] = await provider.send_batch([m for _, m in messages])
        except ProviderError as exc:
            log.warning(
                "could not send %d welcome email(s): %s; the retry job sends them", len(messages), exc
            )
            # what earlier requests of the batch had sent is recorded as sent, never sent again
            results = [exc.completed.get(index, str(exc)) for index in range(len(messages))]
        answered = [(sid, result) for (sid, _), result in zip(messages, results, strict=True)]
        done = await asyncio.to_thread(_record_all, engine, answered, now or utcnow())
        outcome.update(done)
        if any(name == "failed" for name in done.elements()):
            log.warning("%d welcome email(s) were not accepted; the retry job sends them", done["failed"])
    return outcome


def _prepare(
    engine: Engine, settings: Settings, letters: Letters, ids: list[int], now: datetime
) -> list[tuple[int, OutgoingMessage]]:
    with session_scope(engine) as session:
        readers = [reader for sid in ids if (reader := claim(session, sid, now)) is not None]
        latest = latest_issue(session, settings) if readers else None
    return [(reader.subscriber_id, letters.welcome(reader, latest)) for reader in readers]


def _record_all(engine: Engine, results: list[tuple[int, SendResult | str]], now: datetime) -> Counter:
    with session_scope(engine) as session:
        return Counter(_record(session, sid, result, now) for sid, result in results)


def send_owed_welcomes(
    engine: Engine, settings: Settings, provider_factory, now: datetime | None = None
) -> Counter:
    """The retry: every welcome still owed and free to send (the scheduler's `retry` job)."""
    if not settings.welcome:
        return Counter()
    now = now or utcnow()
    with session_scope(engine) as session:
        ids = owed(session, now)
    if not ids:
        return Counter()

    async def go() -> Counter:
        provider = provider_factory(settings)
        try:
            return await deliver(engine, settings, Letters(settings), provider, ids, now)
        finally:
            await provider.aclose()

    return asyncio.run(go())
