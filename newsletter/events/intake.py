"""Storing provider events once and acting on them.

A provider may post the same event again (a retry after a timeout, a replayed request): it is stored
once, by (provider, event key), and acted on once. A hard bounce or a spam complaint suppresses the
reader at once, so the next batch of a send in progress already leaves them out.

Events arrive bounded (`events.fields`). Each is stored under its own savepoint, so should the store
still refuse one (a DataError: a value it cannot hold), that event alone is counted unprocessable
and logged, and the others of the batch are stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, col, select

from newsletter.events.base import NormalisedEvent, Received
from newsletter.models import Delivery, EventKind, ProviderEvent, Subscriber, SubscriberStatus, utcnow
from newsletter.subscriptions import record_event, unsubscribe

log = logging.getLogger("newsletter.events")
SUPPRESSING = {EventKind.BOUNCED: SubscriberStatus.BOUNCED, EventKind.COMPLAINED: SubscriberStatus.COMPLAINED}


@dataclass
class IntakeReport:
    stored: int = 0
    duplicates: int = 0
    suppressed: int = 0
    kinds: Counter = field(default_factory=Counter)
    refused: Received = field(default_factory=Received)  # events the store would not hold


def store_events(session: Session, events: list[NormalisedEvent]) -> IntakeReport:
    report = IntakeReport()
    for place, event in enumerate(events, start=1):
        try:
            with session.begin_nested():
                outcome = _store(session, event)
        except IntegrityError:  # the same event arrived twice at once; the other request stored it
            outcome = "duplicate"
        except DataError as exc:  # a value the store cannot hold got past the bounds: a bug to fix
            log.error(
                "%s webhook: event %d refused by the store: %s",
                event.provider,
                place,
                type(exc.orig).__name__,
            )
            report.refused.refuse(f"event {place}: refused by the store")
            continue
        if outcome == "duplicate":
            report.duplicates += 1
            continue
        report.stored += 1
        report.kinds[event.kind] += 1
        if outcome == "suppressed":
            report.suppressed += 1
    return report


def _store(session: Session, event: NormalisedEvent) -> str:
    """Store one event and act on it: "duplicate", "suppressed" or "stored"."""
    if session.exec(
        select(ProviderEvent.id).where(
            ProviderEvent.provider == event.provider, ProviderEvent.event_key == event.event_key
        )
    ).first():
        return "duplicate"
    delivery = _delivery_for(session, event)
    subscriber_id = delivery.subscriber_id if delivery else _subscriber_id(session, event.recipient)
    session.add(
        ProviderEvent(
            provider=event.provider,
            event_key=event.event_key,
            kind=event.kind,
            delivery_id=delivery.id if delivery else None,
            subscriber_id=subscriber_id,
            issue_id=delivery.issue_id if delivery else None,
            provider_message_id=event.provider_message_id,
            detail=event.detail,
            machine=event.machine,
            occurred_at=event.occurred_at,
        )
    )
    session.flush()
    if subscriber_id is not None and _act(session, event, subscriber_id, delivery):
        return "suppressed"
    return "stored"


def _delivery_for(session: Session, event: NormalisedEvent) -> Delivery | None:
    """The ledger row: by our own delivery id when the metadata came back, else by the provider's
    message id and the recipient."""
    if event.delivery_id is not None:
        delivery = session.get(Delivery, event.delivery_id)
        if delivery is not None:
            return delivery
    if event.provider_message_id:
        query = select(Delivery).where(Delivery.provider_message_id == event.provider_message_id.strip("<>"))
        if event.recipient:
            query = query.join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id).where(
                Subscriber.email == event.recipient
            )
        return session.exec(query.limit(1)).first()
    return None


def _subscriber_id(session: Session, email: str | None) -> int | None:
    if not email:
        return None
    return session.exec(select(Subscriber.id).where(Subscriber.email == email)).first()


def _act(session: Session, event: NormalisedEvent, subscriber_id: int, delivery: Delivery | None) -> bool:
    """Suppress on a hard bounce or complaint; unsubscribe on a provider-side unsubscribe."""
    source = f"{event.provider} webhook"
    issue_id = delivery.issue_id if delivery else None
    if event.kind == EventKind.UNSUBSCRIBED:
        unsubscribe(session, subscriber_id, source=source, client=None, issue_id=issue_id)
        return False
    status = SUPPRESSING.get(event.kind)
    if status is None:
        return False
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
        return False
    subscriber.status, subscriber.updated_at = status, utcnow()
    session.add(subscriber)
    record_event(
        session,
        subscriber,
        str(status),
        source=source,
        detail=(event.detail or "")[:500] or None,
        issue_id=issue_id,
    )
    return True


def issue_event_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Events per kind for one issue's messages (delivered, bounced, complained, opened, ...)."""
    query = (
        select(ProviderEvent.kind, func.count())
        .where(ProviderEvent.issue_id == issue_id)
        .group_by(ProviderEvent.kind)
    )
    return {kind: count for kind, count in session.exec(query)}
