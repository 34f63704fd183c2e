"""Readers joining and leaving. Every change of a subscriber's state is written as an event."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import Session, select

from newsletter.headers import normalise_email
from newsletter.models import Subscriber, SubscriberEvent, SubscriberStatus, utcnow


@dataclass
class AddResult:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    not_reactivated: list[str] = field(default_factory=list)


def client_hash(address: str | None) -> str | None:
    """A client address is kept only as a hash: enough to spot abuse, not to track a person."""
    if not address:
        return None
    return hashlib.sha256(address.encode()).hexdigest()[:32]


def record_event(
    session: Session,
    subscriber: Subscriber,
    kind: str,
    *,
    source: str,
    client: str | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        SubscriberEvent(
            subscriber_id=subscriber.id,
            kind=kind,
            source=source,
            client_hash=client_hash(client),
            detail=detail,
        )
    )


def add_active(session: Session, emails: Iterable[str], *, source: str) -> AddResult:
    """Add readers whose consent the list owner vouches for (an editor, a demo) as active at once.

    Addresses that left (unsubscribed, bounced, complained) are not reactivated: only the reader can
    come back, through confirmation. Raises HeaderValueError on the first invalid address, adding none.
    """
    normalised = list(dict.fromkeys(normalise_email(e) for e in emails))
    result = AddResult()
    now = utcnow()
    existing = {s.email: s for s in session.exec(select(Subscriber).where(Subscriber.email.in_(normalised)))}
    for email in normalised:
        subscriber = existing.get(email)
        if subscriber is None:
            subscriber = Subscriber(
                email=email, status=SubscriberStatus.ACTIVE, source=source, confirmed_at=now
            )
            session.add(subscriber)
            session.flush()
            record_event(
                session, subscriber, "subscribed", source=source, detail="added as active by the list owner"
            )
            result.added.append(email)
        elif subscriber.status == SubscriberStatus.ACTIVE:
            result.already.append(email)
        elif subscriber.status == SubscriberStatus.PENDING:
            subscriber.status, subscriber.confirmed_at, subscriber.updated_at = (
                SubscriberStatus.ACTIVE,
                now,
                now,
            )
            session.add(subscriber)
            record_event(
                session, subscriber, "confirmed", source=source, detail="activated by the list owner"
            )
            result.added.append(email)
        else:
            result.not_reactivated.append(email)
    return result


def count_by_status(session: Session) -> dict[str, int]:
    from sqlalchemy import func

    query = select(Subscriber.status, func.count()).group_by(Subscriber.status)
    return {status: count for status, count in session.exec(query)}
