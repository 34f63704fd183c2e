"""The column types and the vocabularies the store's tables use, apart from the tables themselves.

Times are stored as UTC. `UTCDateTime` makes that explicit on every backend: SQLite has no time zone
type, so values go in as naive UTC and come back as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, TypeDecorator
from sqlmodel import Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp that is always UTC in the store and always aware in Python."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_time_field(*, nullable: bool = False, index: bool = False, default=None):
    """A UTC timestamp column."""
    kwargs = {"default_factory": default} if default else {"default": None}
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index), **kwargs)


class Verdict(StrEnum):
    SHIP = "ship"
    SKIP = "skip"


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"
    SUPPRESSED = "suppressed"  # left the list on another platform, by its export; `status_reason` says how


class IssueStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class EventKind(StrEnum):
    """The one vocabulary every provider's events are normalised into."""

    DELIVERED = "delivered"
    BOUNCED = "bounced"  # permanent: the address is suppressed
    SOFT_BOUNCED = "soft_bounced"  # temporary: nothing to do
    COMPLAINED = "complained"  # marked as spam: the address is suppressed
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"
    DEFERRED = "deferred"
    OTHER = "other"
