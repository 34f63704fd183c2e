"""Re-engagement and sunset: a reader who stopped reading is asked once, then let go.

Off unless NEWSLETTER_SUNSET_ISSUES=N (2 to 26). The scheduler's daily `sunset` job (`run`):

1. settles the open questions: a reader who has shown a sign of life since the question was sent is
   kept (`engaged`), one who left meanwhile is `left`, and one who has not answered by the date the
   email named (the end of the local day 14 days after it went out) is unsubscribed: the state, its
   time, `status_reason` `sunset` and an `unsubscribed` event whose source is `sunset`. A question
   that could not be sent for three days is closed as `unsent`: nobody is let go unasked;
2. asks: active readers who were sent each of the last N sent issues (the ledger's `sent` rows) and
   since the first of them showed no sign of life, and have no question open or settled in that
   span. One `sunsetask` row per reader and span (unique on reader and the span's last issue): two
   schedulers at once ask a reader once, and a `sunset_asked` event goes with it;
3. sends the questions not sent yet, each claimed first with a conditional UPDATE (a lease), so two
   schedulers never send one twice; a failure is tried again at the next run.

Who counts as silent, and when nobody is asked at all, is `newsletter.signs_of_life`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, select, update
from sqlalchemy import insert as core_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from newsletter.config import SUNSET_GRACE_DAYS, Settings
from newsletter.db import session_scope
from newsletter.letters import Letters, StillWant
from newsletter.models import (
    Issue,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    SunsetAsk,
    utcnow,
)
from newsletter.providers.base import ProviderError, SendResult
from newsletter.signs_of_life import last_span, lively_since_asked, silent_readers, span_problem
from newsletter.subscriptions import LEFT, record_event

log = logging.getLogger("newsletter.sunset")
ASKED_EVENT = "sunset_asked"
SUNSET_SOURCE = "sunset"
LEASE = timedelta(minutes=10)  # a claimed question is left alone this long by another scheduler
RETRY_PAUSE = timedelta(hours=1)  # after a failed send, the earliest next try
UNSENT_AFTER = timedelta(days=3)  # a question not sent by then is closed: nobody is let go unasked
CHUNK = 500  # questions settled, or claimed and sent, per transaction


class Outcome(StrEnum):
    STAYED = "stayed"
    ENGAGED = "engaged"
    SUNSET = "sunset"
    LEFT = "left"
    UNSENT = "unsent"


@dataclass
class SunsetRun:
    """What one run did; `skipped` says why nobody was asked (None: the span was judged)."""

    skipped: str | None = None
    asked: int = 0
    sent: int = 0
    failed: int = 0
    settled: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Outcome, 0))

    def summary(self) -> str:
        head = f"sunset: {self.asked} asked, {self.sent} question(s) sent"
        if self.failed:
            head += f" ({self.failed} failed, tried again at the next run)"
        settled = self.settled
        head += (
            f"; {settled[Outcome.SUNSET]} let go, {settled[Outcome.ENGAGED]} kept by a click, vote or "
            f"preferences change, {settled[Outcome.LEFT]} left otherwise, "
            f"{settled[Outcome.UNSENT]} never sent"
        )
        return head + (f"; nobody asked: {self.skipped}" if self.skipped else "")


def run(engine: Engine, settings: Settings, provider_factory, now: datetime | None = None) -> SunsetRun:
    """One run of the scheduler's `sunset` job (see the module's docstring)."""
    result = SunsetRun()
    if not settings.sunset_issues:
        result.skipped = "off (NEWSLETTER_SUNSET_ISSUES=0)"
        return result
    if settings.tracking == "off":
        # Without stored clicks every reader looks silent: nobody is asked, nobody let go.
        result.skipped = "NEWSLETTER_TRACKING=off, so clicks are not recorded and silence says nothing"
        return result
    now = now or utcnow()
    settle(engine, now, result)
    with session_scope(engine) as session:
        span = last_span(session, settings.sunset_issues)
        result.skipped = span_problem(session, span, settings, now)
        if result.skipped is None:
            result.asked = ask(session, span, now)
    asyncio.run(_send_questions(engine, settings, provider_factory, now, result))
    return result


# --- 1. settling the open questions -------------------------------------------------------------------


def settle(engine: Engine, now: datetime, result: SunsetRun) -> None:
    last = 0
    while True:
        with session_scope(engine) as session:
            asks = list(
                session.scalars(
                    select(SunsetAsk)
                    .where(col(SunsetAsk.outcome).is_(None), col(SunsetAsk.id) > last)
                    .order_by(SunsetAsk.id)
                    .limit(CHUNK)
                )
            )
            if not asks:
                return
            last = asks[-1].id
            verdicts: dict[Outcome, list[int]] = {}
            for ask, outcome in _verdicts(session, asks, now):
                verdicts.setdefault(outcome, []).append(ask.id)
            for outcome, ids in verdicts.items():
                closed = close(session, ids, outcome, now)
                result.settled[outcome] += len(closed)
                if outcome == Outcome.SUNSET:
                    let_go(session, closed, now)


def _verdicts(session: Session, asks: list[SunsetAsk], now: datetime) -> list[tuple[SunsetAsk, Outcome]]:
    """The open questions of this chunk that can be settled now, and how."""
    statuses = dict(
        session.execute(
            select(Subscriber.id, Subscriber.status).where(
                col(Subscriber.id).in_({ask.subscriber_id for ask in asks})
            )
        ).all()
    )
    lively = lively_since_asked([ask.id for ask in asks])
    alive = set(session.scalars(lively))
    verdicts = []
    for ask in asks:
        if statuses.get(ask.subscriber_id) != SubscriberStatus.ACTIVE:
            verdicts.append((ask, Outcome.LEFT))
        elif ask.id in alive:
            verdicts.append((ask, Outcome.ENGAGED))
        elif ask.sent_at is None and ask.asked_at <= now - UNSENT_AFTER:
            verdicts.append((ask, Outcome.UNSENT))
        elif ask.answer_by is not None and ask.answer_by <= now:
            verdicts.append((ask, Outcome.SUNSET))
    return verdicts


def close(session: Session, ask_ids: list[int], outcome: Outcome, now: datetime) -> list[int]:
    """Settle the questions that are still open; returns the readers of those it settled. The store
    decides who settles a question (this job, the stay button, a second scheduler): only one does."""
    if not ask_ids:
        return []
    return list(
        session.scalars(
            update(SunsetAsk)
            .where(col(SunsetAsk.id).in_(ask_ids), col(SunsetAsk.outcome).is_(None))
            .values(outcome=outcome.value, resolved_at=now, claimed_until=None)
            .returning(SunsetAsk.subscriber_id)
            .execution_options(synchronize_session=False)
        )
    )


def let_go(session: Session, subscriber_ids: list[int], now: datetime) -> None:
    """`subscriptions.unsubscribe` for many readers at once, with the source `sunset`: the same state,
    time and event, and `status_reason` `sunset` (the export's column), in one UPDATE (only readers
    still active) and one INSERT (the outgoing webhooks' hook sees its rows)."""
    if not subscriber_ids:
        return
    left = session.scalars(
        update(Subscriber)
        .where(col(Subscriber.id).in_(subscriber_ids), Subscriber.status == SubscriberStatus.ACTIVE)
        .values(
            status=SubscriberStatus.UNSUBSCRIBED,
            status_reason=SUNSET_SOURCE,
            unsubscribed_at=now,
            updated_at=now,
        )
        .returning(Subscriber.id)
        .execution_options(synchronize_session=False)
    ).all()
    if left:
        session.execute(
            core_insert(SubscriberEvent),
            [
                {"subscriber_id": sid, "kind": "unsubscribed", "source": SUNSET_SOURCE, "at": now}
                | {"detail": "was active; no click, vote or answer since the question (sunset)"}
                for sid in left
            ],
        )


# --- 2. asking ----------------------------------------------------------------------------------------


def ask(session: Session, span: list[Issue], now: datetime) -> int:
    """A question for every silent reader of the span, once (a reader already asked for this span by
    another scheduler is skipped by the unique constraint), each with its event. Returns how many."""
    readers = list(session.scalars(silent_readers(span, now)))
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    asked = 0
    weeks = f"no click or vote in the last {len(span)} issues (to {span[0].week})"
    statement = (
        insert(SunsetAsk)
        .on_conflict_do_nothing(index_elements=["subscriber_id", "last_issue_id"])
        .returning(SunsetAsk.subscriber_id)
    )
    for start in range(0, len(readers), CHUNK):
        rows = [
            {"subscriber_id": reader, "last_issue_id": span[0].id, "issues": len(span), "asked_at": now}
            | {"attempts": 0}
            for reader in readers[start : start + CHUNK]
        ]
        new = list(session.scalars(statement, rows))  # executemany, RETURNING what was inserted
        if new:
            events = [
                {
                    "subscriber_id": sid,
                    "kind": ASKED_EVENT,
                    "source": SUNSET_SOURCE,
                    "detail": weeks,
                    "at": now,
                }
                for sid in new
            ]
            session.execute(core_insert(SubscriberEvent), events)
        asked += len(new)
    return asked


# --- 3. sending the questions ----------------------------------------------------------------------------


def claim_unsent(session: Session, now: datetime, limit: int) -> list[tuple[int, int, str]]:
    """(question, reader, address) of up to `limit` open questions not sent yet and free to send,
    claimed for this process. One UPDATE ... RETURNING: two schedulers never claim one twice."""
    free = (
        select(SunsetAsk.id)
        .where(
            col(SunsetAsk.outcome).is_(None),
            col(SunsetAsk.sent_at).is_(None),
            or_(col(SunsetAsk.claimed_until).is_(None), col(SunsetAsk.claimed_until) <= now),
        )
        .order_by(SunsetAsk.id)
        .limit(limit)
    )
    claimed = session.execute(
        update(SunsetAsk)
        .where(
            col(SunsetAsk.id).in_(free.scalar_subquery()),
            or_(col(SunsetAsk.claimed_until).is_(None), col(SunsetAsk.claimed_until) <= now),
        )
        .values(claimed_until=now + LEASE, attempts=SunsetAsk.attempts + 1)
        .returning(SunsetAsk.id, SunsetAsk.subscriber_id)
    ).all()
    readers = dict(
        session.execute(
            select(Subscriber.id, Subscriber.email).where(
                col(Subscriber.id).in_([sid for _, sid in claimed]),
                Subscriber.status == SubscriberStatus.ACTIVE,
                col(Subscriber.email).is_not(None),
            )
        ).all()
    )
    return sorted((ask_id, sid, readers[sid]) for ask_id, sid in claimed if sid in readers)


def answer_by(settings: Settings, now: datetime) -> datetime:
    """The end of the local day SUNSET_GRACE_DAYS after `now`: the email names that day."""
    day = (now + timedelta(days=SUNSET_GRACE_DAYS)).astimezone(settings.zone).date()
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=settings.zone)


async def _send_questions(engine: Engine, settings: Settings, provider_factory, now, result) -> None:
    deadline = answer_by(settings, now)
    question: StillWant | None = None
    provider = None
    try:
        while True:
            with session_scope(engine) as session:
                claimed = claim_unsent(session, now, CHUNK)
            if not claimed:
                return
            if provider is None:
                provider = provider_factory(settings)
                letters = Letters(settings)
                question = letters.still_want(settings.sunset_issues, (deadline - timedelta(days=1)).date())
            messages = [question.message(ask_id=a, subscriber_id=s, email=e) for a, s, e in claimed]
            size = max(1, min(provider.default_batch, provider.max_batch))
            for start in range(0, len(messages), size):
                batch = messages[start : start + size]
                asks = [ask_id for ask_id, _, _ in claimed[start : start + size]]
                fatal = None
                try:
                    answers: list[SendResult | str] = list(await provider.send_batch(batch))
                except ProviderError as exc:
                    log.warning("could not send %d re-engagement question(s): %s", len(batch), exc)
                    # what earlier requests of the batch had sent is recorded as sent, never sent again
                    answers = [exc.completed.get(index, str(exc)) for index in range(len(batch))]
                    fatal = exc if exc.fatal else None
                with session_scope(engine) as session:
                    _record(session, list(zip(asks, answers, strict=True)), now, deadline, result)
                if fatal is not None:  # nothing else would go either: the next run tries again
                    log.error("the provider refused the re-engagement questions: %s", fatal)
                    return
    finally:
        if provider is not None:
            await provider.aclose()


def _record(
    session: Session, answered: list[tuple[int, SendResult | str]], now: datetime, deadline: datetime, result
) -> None:
    """The provider's answers: the accepted questions are sent (one UPDATE), the others tried again at
    the next run, or closed as unsent when the provider refuses the address for good."""
    sent = [ask_id for ask_id, answer in answered if isinstance(answer, SendResult) and answer.accepted]
    if sent:
        session.execute(
            update(SunsetAsk)
            .where(col(SunsetAsk.id).in_(sent))
            .values(sent_at=now, answer_by=deadline, claimed_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        )
    result.sent += len(sent)
    for ask_id, answer in answered:
        if isinstance(answer, SendResult) and answer.accepted:
            continue
        error = answer if isinstance(answer, str) else (answer.error or "refused by the provider")
        values = {"last_error": error[:500], "claimed_until": now + RETRY_PAUSE}
        if isinstance(answer, SendResult) and answer.permanent:
            values |= {"outcome": Outcome.UNSENT.value, "resolved_at": now, "claimed_until": None}
        session.execute(
            update(SunsetAsk)
            .where(col(SunsetAsk.id) == ask_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        result.failed += 1


# --- the stay button ----------------------------------------------------------------------------------


class Stay(StrEnum):
    STAYED = "stayed"  # kept: an open question closed, or none was open
    LEFT = "left"  # the reader is no longer on the list (let go, unsubscribed, bounced...)
    GONE = "gone"  # no such reader, erased, or never confirmed


def stay(session: Session, subscriber_id: int, *, client: str | None, now: datetime | None = None) -> Stay:
    """The stay page's POST: the reader wants to keep getting issues. Closes their open question (if
    the sunset job has not let them go first: the store decides) and records `stayed`, which starts
    the count of silent issues again."""
    now = now or utcnow()
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.email is None or subscriber.status == SubscriberStatus.ERASED:
        return Stay.GONE
    if subscriber.status in LEFT:
        return Stay.LEFT
    if subscriber.status != SubscriberStatus.ACTIVE:
        return Stay.GONE
    open_asks = session.scalars(
        select(SunsetAsk.id).where(SunsetAsk.subscriber_id == subscriber_id, col(SunsetAsk.outcome).is_(None))
    ).all()
    closed = bool(close(session, list(open_asks), Outcome.STAYED, now))
    detail = "answered the re-engagement question" if closed else "no question was open"
    record_event(session, subscriber, "stayed", source="stay page", client=client, detail=detail, at=now)
    return Stay.STAYED


# --- figures ------------------------------------------------------------------------------------------


def figures(session: Session, *, last_issue_id: int | None = None) -> dict[str, int]:
    """The questions that went out (for the span ending with `last_issue_id`, or all of them) and how
    they ended: waiting, stayed (the button), engaged (a click, vote or preferences change), let go,
    left otherwise. The five add up to `asked`."""
    query = (
        select(SunsetAsk.outcome, func.count())
        .where(col(SunsetAsk.sent_at).is_not(None))
        .group_by(SunsetAsk.outcome)
    )
    if last_issue_id is not None:
        query = query.where(SunsetAsk.last_issue_id == last_issue_id)
    counts = dict(session.execute(query).all())
    return {
        "asked": sum(counts.values()),
        "waiting": counts.get(None, 0),
        "stayed": counts.get(Outcome.STAYED, 0),
        "engaged": counts.get(Outcome.ENGAGED, 0),
        "let_go": counts.get(Outcome.SUNSET, 0),
        "left": counts.get(Outcome.LEFT, 0),
    }
