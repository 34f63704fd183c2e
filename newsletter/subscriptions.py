"""Readers joining, confirming, changing their mind and leaving. Every change of state is an event.

The list never holds an address that did not ask to be on it: a signup creates a *pending* reader and
only the confirmation (a POST with a signed link from their inbox) makes them active. The list owner may
vouch for consent on import; even then, readers who left are never reactivated by anyone but themselves.

Consent, precisely: a reader who unsubscribed, bounced, complained, was suppressed by an import (another
platform's export says they left it) or was erased comes back only through `confirm`, with a
confirmation link issued after they asked again. Asking again (anyone may type an
address into the form) does not change their state: they stay unsubscribed, bounced or complained, with
`requested_at` saying a confirmation is outstanding, so no import, `subscribers add` or later signup can
mistake them for a new pending reader. An erased address leaves only a keyed hash (`ErasedAddress`);
a row made for it again (by a signup) is pending, and `owner_may_activate` refuses it until the reader
confirms, which removes the hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from newsletter.headers import normalise_email
from newsletter.models import (
    ErasedAddress,
    Issue,
    IssueLink,
    LinkHit,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    Vote,
    utcnow,
)

LEFT = (
    SubscriberStatus.UNSUBSCRIBED,
    SubscriberStatus.BOUNCED,
    SubscriberStatus.COMPLAINED,
    SubscriberStatus.SUPPRESSED,
)
LEFT_EVENTS = tuple(str(status) for status in LEFT)  # the event kinds recorded when a reader leaves
MAX_PAUSE_WEEKS = 26
SIGNUP_REQUESTED = "signup_requested"
CONFIRMATION_LINK = "confirmation link"  # the source of a reader's own confirmation


class RateLimited(Exception):
    """Too many requests for one key; `retry_after` is in seconds."""

    def __init__(self, retry_after: int, what: str):
        super().__init__(f"too many {what}; try again in {retry_after} s")
        self.retry_after = retry_after


class Signup(StrEnum):
    CONFIRM = "confirm"  # send a confirmation link
    ALREADY_ACTIVE = "already_active"  # send a note with the preferences link instead
    IGNORED = "ignored"  # a bot (honeypot): send nothing, say the same as always


class Outcome(StrEnum):
    DONE = "done"
    ALREADY = "already"
    STALE = "stale"  # a link from before the reader left or asked again
    GONE = "gone"  # no such reader, or erased


@dataclass(frozen=True)
class SignupResult:
    action: Signup
    subscriber_id: int | None = None
    email: str | None = None


def client_hash(address: str | None) -> str | None:
    """A client address is kept only as a hash: enough to spot abuse, not to track a person."""
    if not address:
        return None
    return hashlib.sha256(address.encode()).hexdigest()[:32]


def email_hash(key: bytes, email: str) -> str:
    """Keyed, so the kept hash of an erased address cannot be reversed with a list of addresses."""
    return hmac.new(key, b"erased-address\x00" + email.encode(), hashlib.sha256).hexdigest()


def record_event(
    session: Session,
    subscriber: Subscriber,
    kind: str,
    *,
    source: str,
    client: str | None = None,
    detail: str | None = None,
    at: datetime | None = None,
    issue_id: int | None = None,
) -> None:
    """`issue_id`: the issue whose link (or List-Unsubscribe header) the reader acted from."""
    session.add(
        SubscriberEvent(
            subscriber_id=subscriber.id,
            kind=kind,
            source=source,
            client_hash=client_hash(client),
            detail=detail,
            at=at or utcnow(),
            issue_id=issue_id,
        )
    )


def find_by_email(session: Session, email: str) -> Subscriber | None:
    return session.exec(select(Subscriber).where(Subscriber.email == email)).first()


def request_signup(
    session: Session,
    raw_email: str,
    *,
    source: str,
    client: str | None,
    per_address: tuple[int, int],
    now: datetime | None = None,
) -> SignupResult:
    """A reader asks to join. Raises HeaderValueError for a bad address and RateLimited when this
    address was sent too many confirmations lately. The caller says "check your inbox" either way."""
    email = normalise_email(raw_email)
    now = now or utcnow()
    subscriber = find_by_email(session, email)
    if subscriber is not None:
        _check_address_rate(session, subscriber, per_address, now)
    if subscriber is None:
        subscriber = Subscriber(email=email, status=SubscriberStatus.PENDING, source=source, requested_at=now)
        session.add(subscriber)
        session.flush()
        record_event(session, subscriber, SIGNUP_REQUESTED, source=source, client=client, at=now)
        return SignupResult(Signup.CONFIRM, subscriber.id, email)
    if subscriber.status == SubscriberStatus.ACTIVE:
        record_event(
            session,
            subscriber,
            SIGNUP_REQUESTED,
            source=source,
            client=client,
            detail="already active",
            at=now,
        )
        return SignupResult(Signup.ALREADY_ACTIVE, subscriber.id, email)
    previous = subscriber.status
    if previous not in LEFT:  # a reader who left stays left until they confirm this request themselves
        subscriber.status = SubscriberStatus.PENDING
    subscriber.requested_at, subscriber.updated_at = now, now
    session.add(subscriber)
    detail = None if previous == SubscriberStatus.PENDING else f"{previous}; stays so until confirmed"
    record_event(session, subscriber, SIGNUP_REQUESTED, source=source, client=client, detail=detail, at=now)
    return SignupResult(Signup.CONFIRM, subscriber.id, email)


def _check_address_rate(
    session: Session, subscriber: Subscriber, limit: tuple[int, int], now: datetime
) -> None:
    count, window = limit
    since = now - timedelta(seconds=window)
    query = (
        select(SubscriberEvent.at)
        .where(
            SubscriberEvent.subscriber_id == subscriber.id,
            SubscriberEvent.kind == SIGNUP_REQUESTED,
            col(SubscriberEvent.at) >= since,
        )
        .order_by(col(SubscriberEvent.at).desc())
        .limit(count)
    )
    recent = list(session.exec(query))
    if len(recent) >= count:
        oldest = min(recent)
        raise RateLimited(
            max(1, int((oldest + timedelta(seconds=window) - now).total_seconds()) + 1), "signups"
        )


def confirm(
    session: Session, subscriber_id: int, issued_at: datetime, *, client: str | None, key: bytes
) -> Outcome:
    """Activate a reader from their confirmation link (the POST, never the GET): the only way back for
    a reader who left. For them the link must answer a request made after they left, and be issued
    after their latest request: an older one is stale."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == SubscriberStatus.ERASED or subscriber.email is None:
        return Outcome.GONE
    if subscriber.status == SubscriberStatus.ACTIVE:
        return Outcome.ALREADY
    if subscriber.status not in (SubscriberStatus.PENDING, *LEFT):
        return Outcome.STALE
    left = _left_at(session, subscriber)
    if left is not None:
        requested = subscriber.requested_at or subscriber.created_at
        # Tokens count whole seconds: a link issued in the second the reader asked still counts.
        if requested <= left or issued_at < requested.replace(microsecond=0):
            return Outcome.STALE
    now = utcnow()
    subscriber.status, subscriber.confirmed_at, subscriber.updated_at = SubscriberStatus.ACTIVE, now, now
    subscriber.paused_until = None
    subscriber.status_reason = None
    session.add(subscriber)
    record_event(session, subscriber, "confirmed", source=CONFIRMATION_LINK, client=client, at=now)
    # They came back by themselves: the guard against re-adding an erased address has done its job.
    session.exec(
        delete(ErasedAddress).where(col(ErasedAddress.email_hash) == email_hash(key, subscriber.email))
    )
    return Outcome.DONE


def _left_at(session: Session, subscriber: Subscriber) -> datetime | None:
    """When the reader last left (unsubscribed, bounced, complained, suppressed); None if they never did."""
    latest = session.exec(
        select(func.max(SubscriberEvent.at)).where(
            SubscriberEvent.subscriber_id == subscriber.id, col(SubscriberEvent.kind).in_(LEFT_EVENTS)
        )
    ).one()
    moments = [m for m in (latest, subscriber.unsubscribed_at) if m is not None]
    return max(moments) if moments else None


def unsubscribe(
    session: Session, subscriber_id: int, *, source: str, client: str | None, issue_id: int | None = None
) -> Outcome:
    """Leave at once: no further issue is sent (the sender checks the state of every batch).
    `issue_id`: the issue the reader left from (its link, its List-Unsubscribe), for its report."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status == SubscriberStatus.ERASED:
        return Outcome.GONE
    if subscriber.status in LEFT:
        return Outcome.ALREADY
    now = utcnow()
    previous = subscriber.status
    subscriber.status, subscriber.unsubscribed_at, subscriber.updated_at = (
        SubscriberStatus.UNSUBSCRIBED,
        now,
        now,
    )
    session.add(subscriber)
    record_event(
        session,
        subscriber,
        "unsubscribed",
        source=source,
        client=client,
        detail=f"was {previous}",
        at=now,
        issue_id=issue_id,
    )
    return Outcome.DONE


def pause(session: Session, subscriber: Subscriber, weeks: int, *, client: str | None) -> None:
    """Skip the next `weeks` weekly issues; 0 resumes now."""
    if not 0 <= weeks <= MAX_PAUSE_WEEKS:
        raise ValueError(f"a pause lasts 0 to {MAX_PAUSE_WEEKS} weeks")
    now = utcnow()
    subscriber.paused_until = now + timedelta(weeks=weeks) if weeks else None
    subscriber.updated_at = now
    session.add(subscriber)
    detail = f"until {subscriber.paused_until:%Y-%m-%d}" if weeks else "resumed"
    record_event(
        session,
        subscriber,
        "paused" if weeks else "resumed",
        source="preferences",
        client=client,
        detail=detail,
        at=now,
    )


def chosen_categories(subscriber: Subscriber) -> frozenset[str] | None:
    """The categories a reader chose, or None for all of them."""
    return frozenset(json.loads(subscriber.categories)) if subscriber.categories else None


def set_categories(
    session: Session,
    subscriber: Subscriber,
    categories: Iterable[str] | None,
    known: Iterable[str],
    *,
    client: str | None,
) -> None:
    """Receive only comparisons in `categories` (None or every known category: all of them)."""
    known_set = set(known)
    chosen = sorted(set(categories)) if categories is not None else None
    if chosen is not None:
        unknown = [c for c in chosen if c not in known_set]
        if unknown:
            raise ValueError(f"unknown categories: {', '.join(unknown)}")
        if not chosen:
            raise ValueError("choose at least one category, or unsubscribe")
        if set(chosen) == known_set:
            chosen = None
    subscriber.categories = json.dumps(chosen) if chosen is not None else None
    subscriber.updated_at = utcnow()
    session.add(subscriber)
    record_event(
        session,
        subscriber,
        "categories",
        source="preferences",
        client=client,
        detail=", ".join(chosen) if chosen else "all",
    )


def set_tracking(session: Session, subscriber: Subscriber, on: bool, *, client: str | None) -> None:
    """Whether the reader's clicks are counted. Off: from now on their hits are not stored (the
    links still work) and their next issues carry plain links; what was stored before stays until
    its retention ends, or until they erase themselves."""
    subscriber.tracking, subscriber.updated_at = on, utcnow()
    session.add(subscriber)
    record_event(
        session, subscriber, "tracking", source="preferences", client=client, detail="on" if on else "off"
    )


def export_data(session: Session, subscriber: Subscriber) -> dict:
    """Everything stored about a reader: the row, its full event trail, their votes and clicks."""
    events = session.exec(
        select(SubscriberEvent)
        .where(SubscriberEvent.subscriber_id == subscriber.id)
        .order_by(SubscriberEvent.id)
    )
    votes = session.exec(select(Vote).where(Vote.subscriber_id == subscriber.id).order_by(Vote.id))
    row = subscriber.model_dump(mode="json")
    row["categories"] = sorted(chosen_categories(subscriber)) if subscriber.categories else None
    return {
        "subscriber": row,
        "events": [e.model_dump(mode="json", exclude={"subscriber_id"}) for e in events],
        "votes": [
            v.model_dump(mode="json", include={"comparison_id", "tool_id", "verdict", "updated_at"})
            for v in votes
        ],
        "clicks": [
            {
                "issue": week,
                "link": url or kind,
                "kind": kind,
                "at": at.isoformat(),
                "method": method,
                "machine": machine,
                "reason": reason,
            }
            for week, url, kind, at, method, machine, reason in session.exec(
                select(
                    Issue.week,
                    IssueLink.url,
                    IssueLink.kind,
                    LinkHit.at,
                    LinkHit.method,
                    LinkHit.machine,
                    LinkHit.reason,
                )
                .join(IssueLink, col(IssueLink.id) == LinkHit.link_id)
                .join(Issue, col(Issue.id) == LinkHit.issue_id)
                .where(LinkHit.subscriber_id == subscriber.id)
                .order_by(LinkHit.at)
            )
        ],
    }


def erase(session: Session, subscriber: Subscriber, *, key: bytes) -> None:
    """Delete the address and everything that ties a person to it. A keyed hash is kept so that an
    import cannot silently re-add the address; the row's id stays so that the ledger stays whole."""
    now = utcnow()
    if subscriber.email:
        session.merge(ErasedAddress(email_hash=email_hash(key, subscriber.email), erased_at=now))
    session.exec(delete(SubscriberEvent).where(col(SubscriberEvent.subscriber_id) == subscriber.id))
    session.exec(delete(LinkHit).where(col(LinkHit.subscriber_id) == subscriber.id))
    session.exec(update(Vote).where(col(Vote.subscriber_id) == subscriber.id).values(subscriber_id=None))
    subscriber.email = None
    subscriber.status = SubscriberStatus.ERASED
    subscriber.status_reason = None
    subscriber.categories = None
    subscriber.paused_until = None
    subscriber.tracking = False  # a hit still in a web process's queue is never written
    subscriber.source = "erased"
    subscriber.updated_at = now
    session.add(subscriber)
    record_event(session, subscriber, "erased", source="preferences", at=now)


def is_erased(session: Session, key: bytes, email: str) -> bool:
    return session.get(ErasedAddress, email_hash(key, email)) is not None


def owner_may_activate(subscriber: Subscriber, erased: bool) -> bool:
    """Whether the list owner (an import, `subscribers add`) may make this existing reader active.

    Only a pending reader who never left and whose address was never erased: the owner vouches for
    the consent of people on their own list, never for someone who left it. `erased` says whether the
    address's keyed hash is in `ErasedAddress` (the caller looks it up, in bulk where it can)."""
    return subscriber.status == SubscriberStatus.PENDING and not erased


@dataclass
class AddResult:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    not_reactivated: list[str] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)


def add_active(session: Session, emails: Iterable[str], *, source: str, key: bytes) -> AddResult:
    """Add readers whose consent the list owner vouches for (an editor, a demo) as active at once.

    Addresses that left (unsubscribed, bounced, complained, suppressed) are not reactivated and erased
    ones are not added back: only the reader can come back, through confirmation. Raises
    HeaderValueError on the first invalid address, adding none.
    """
    normalised = list(dict.fromkeys(normalise_email(e) for e in emails))
    result = AddResult()
    now = utcnow()
    existing = {
        s.email: s for s in session.exec(select(Subscriber).where(col(Subscriber.email).in_(normalised)))
    }
    for email in normalised:
        subscriber = existing.get(email)
        erased = is_erased(session, key, email)
        if subscriber is None and erased:
            result.erased.append(email)
        elif subscriber is None:
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
        elif owner_may_activate(subscriber, erased):
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
        elif erased:
            result.erased.append(email)
        else:
            result.not_reactivated.append(email)
    return result


def count_by_status(session: Session) -> dict[str, int]:
    query = select(Subscriber.status, func.count()).group_by(Subscriber.status)
    return {status: count for status, count in session.exec(query)}


def paused_count(session: Session, now: datetime | None = None) -> int:
    query = select(func.count()).where(
        Subscriber.status == SubscriberStatus.ACTIVE, col(Subscriber.paused_until) > (now or utcnow())
    )
    return session.exec(query).one()


def recent_event_counts(session: Session, days: int, now: datetime | None = None) -> dict[str, int]:
    since = (now or utcnow()) - timedelta(days=days)
    query = (
        select(SubscriberEvent.kind, func.count())
        .where(col(SubscriberEvent.at) >= since)
        .group_by(SubscriberEvent.kind)
    )
    return {kind: count for kind, count in session.exec(query)}
