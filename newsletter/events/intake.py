"""Storing provider events once and acting on them.

A provider may post the same event again (a retry after a timeout, a replayed request): it is stored
once, by (provider, event key), and acted on once. A hard bounce or a spam complaint suppresses the
reader at once, so the next batch of a send in progress already leaves them out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from newsletter.events.normalise import NormalisedEvent
from newsletter.models import Delivery, EventKind, ProviderEvent, Subscriber, SubscriberStatus, utcnow
from newsletter.subscriptions import record_event, unsubscribe

SUPPRESSING = {EventKind.BOUNCED: SubscriberStatus.BOUNCED, EventKind.COMPLAINED: SubscriberStatus.COMPLAINED}


@dataclass
class IntakeReport:
    stored: int = 0
    duplicates: int = 0
    suppressed: int = 0
    kinds: Counter = field(default_factory=Counter)


def store_events(session: Session, events: list[NormalisedEvent]) -> IntakeReport:
    report = IntakeReport()
    for event in events:
        if session.exec(
            select(ProviderEvent.id).where(
                ProviderEvent.provider == event.provider, ProviderEvent.event_key == event.event_key
            )
        ).first():
            report.duplicates += 1
            continue
        delivery = _delivery_for(session, event)
        subscriber_id = delivery.subscriber_id if delivery else _subscriber_id(session, event.recipient)
        try:
            with session.begin_nested():
                session.add(
                    ProviderEvent(
                        provider=event.provider,
                        event_key=event.event_key[:200],
                        kind=event.kind,
                        delivery_id=delivery.id if delivery else None,
                        subscriber_id=subscriber_id,
                        issue_id=delivery.issue_id if delivery else None,
                        provider_message_id=event.provider_message_id,
                        detail=(event.detail or None),
                        occurred_at=event.occurred_at,
                    )
                )
        except IntegrityError:  # the same event arrived twice at once; the other request stored it
            report.duplicates += 1
            continue
        report.stored += 1
        report.kinds[event.kind] += 1
        if subscriber_id is not None and _act(session, event, subscriber_id):
            report.suppressed += 1
    return report


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


def _act(session: Session, event: NormalisedEvent, subscriber_id: int) -> bool:
    """Suppress on a hard bounce or complaint; unsubscribe on a provider-side unsubscribe."""
    source = f"{event.provider} webhook"
    if event.kind == EventKind.UNSUBSCRIBED:
        unsubscribe(session, subscriber_id, source=source, client=None)
        return False
    status = SUPPRESSING.get(event.kind)
    if status is None:
        return False
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
        return False
    subscriber.status, subscriber.updated_at = status, utcnow()
    session.add(subscriber)
    record_event(session, subscriber, str(status), source=source, detail=(event.detail or "")[:500] or None)
    return True


def issue_event_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Events per kind for one issue's messages (delivered, bounced, complained, opened, ...)."""
    query = (
        select(ProviderEvent.kind, func.count())
        .where(ProviderEvent.issue_id == issue_id)
        .group_by(ProviderEvent.kind)
    )
    return {kind: count for kind, count in session.exec(query)}
