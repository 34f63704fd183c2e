"""SQLModel tables. Derived figures (panel ship %, community %) are computed from rows, never stored.

Times are stored as UTC (`newsletter.model_types.UTCDateTime`, with the status vocabularies the
tables use).
"""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Text,
    UniqueConstraint,
    event,
    text,
    true,
)
from sqlmodel import Field, SQLModel

from newsletter.model_types import (  # noqa: F401  (the tables' vocabularies, as before)
    DeliveryStatus,
    EventKind,
    IssueStatus,
    SubscriberStatus,
    UTCDateTime,
    Verdict,
    utc_time_field,
    utcnow,
)
from newsletter.tracking.links import LinkKind  # noqa: F401  (the kinds an IssueLink has)
from newsletter.weeks import issue_slug


class Tool(SQLModel, table=True):
    """An AI tool as the site describes it; shared by every comparison it appears in."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120, unique=True, index=True)
    name: str = Field(max_length=200)
    vendor: str | None = Field(default=None, max_length=200)
    category: str = Field(max_length=100)
    tagline: str = Field(max_length=300)
    description: str = Field(sa_column=Column(Text, nullable=False))
    entry_price: str = Field(max_length=100)
    url: str | None = Field(default=None, max_length=2000)
    updated_at: datetime = utc_time_field(default=utcnow)


class Comparison(SQLModel, table=True):
    """Two tools side by side, with the panel's reviews of each."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=200, unique=True, index=True)
    title: str = Field(max_length=300)
    dek: str = Field(max_length=600)
    category: str = Field(max_length=100, index=True)
    left_tool_id: int = Field(foreign_key="tool.id")
    right_tool_id: int = Field(foreign_key="tool.id")
    url: str | None = Field(default=None, max_length=2000)
    pinned: bool = Field(default=False)
    published_at: datetime = utc_time_field(index=True)
    created_at: datetime = utc_time_field(default=utcnow)
    updated_at: datetime = utc_time_field(default=utcnow)


class Reviewer(SQLModel, table=True):
    """A panel member; the lens is the angle every one of their quotes takes."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120, unique=True, index=True)
    name: str = Field(max_length=200)
    lens: str = Field(max_length=100)


class Review(SQLModel, table=True):
    """One reviewer's verdict on one tool within one comparison."""

    __table_args__ = (UniqueConstraint("comparison_id", "tool_id", "reviewer_id"),)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    tool_id: int = Field(foreign_key="tool.id")
    reviewer_id: int = Field(foreign_key="reviewer.id")
    position: int = Field(default=0)
    verdict: str = Field(max_length=4)
    quote: str = Field(sa_column=Column(Text, nullable=False))


class Vote(SQLModel, table=True):
    """A community vote: one per voter per tool in a comparison; a new vote replaces the old one."""

    __table_args__ = (UniqueConstraint("comparison_id", "tool_id", "voter"),)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    tool_id: int = Field(foreign_key="tool.id")
    voter: str = Field(max_length=120)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True)
    verdict: str = Field(max_length=4)
    issue_id: int | None = Field(default=None, foreign_key="issue.id", index=True)  # cast from its links
    created_at: datetime = utc_time_field(default=utcnow)
    updated_at: datetime = utc_time_field(default=utcnow)


class Subscriber(SQLModel, table=True):
    """A reader's address and where they stand. The address is unique in its lower-cased form.

    `requested_at` is when the reader last asked to join: a confirmation link issued before it no
    longer counts. `categories` is a JSON list of the comparison categories they want (None: all).
    An erased reader keeps only this row's id, state and times (the address becomes NULL), so the
    ledger stays whole. `tracking` False: the reader turned click tracking off in their preferences
    (their hits are not stored, and their issues carry plain links).
    """

    id: int | None = Field(default=None, primary_key=True)
    email: str | None = Field(default=None, max_length=254, unique=True, index=True)
    status: str = Field(default=SubscriberStatus.PENDING, max_length=20, index=True)
    source: str = Field(default="unknown", max_length=40)
    categories: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = utc_time_field(default=utcnow)
    requested_at: datetime | None = utc_time_field(nullable=True)
    confirmed_at: datetime | None = utc_time_field(nullable=True)
    unsubscribed_at: datetime | None = utc_time_field(nullable=True)
    paused_until: datetime | None = utc_time_field(nullable=True)
    tracking: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    updated_at: datetime = utc_time_field(default=utcnow)
    # Why the reader is in their state where the state alone does not say ("imported: mailchimp cleaned").
    status_reason: str | None = Field(default=None, max_length=80)


class ErasedAddress(SQLModel, table=True):
    """A keyed hash of an address whose owner asked to be erased: imports must not re-add it."""

    email_hash: str = Field(primary_key=True, max_length=64)
    erased_at: datetime = utc_time_field(default=utcnow)


class SubscriberEvent(SQLModel, table=True):
    """The audit trail of a subscriber: every change of state, when, from where."""

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True)
    kind: str = Field(max_length=40)
    source: str = Field(max_length=40)
    client_hash: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=2000)
    issue_id: int | None = Field(default=None, foreign_key="issue.id", index=True)  # what it answered
    at: datetime = utc_time_field(default=utcnow)


class Issue(SQLModel, table=True):
    """One issue per ISO week, ever; it moves draft -> approved -> sending -> sent (or cancelled)."""

    id: int | None = Field(default=None, primary_key=True)
    week: str = Field(max_length=8, unique=True, index=True)
    status: str = Field(default=IssueStatus.DRAFT, max_length=20)
    subject_override: str | None = Field(default=None, max_length=200)
    preheader_override: str | None = Field(default=None, max_length=300)
    created_at: datetime = utc_time_field(default=utcnow)
    updated_at: datetime = utc_time_field(default=utcnow)
    approved_at: datetime | None = utc_time_field(nullable=True)
    send_started_at: datetime | None = utc_time_field(nullable=True)
    sent_at: datetime | None = utc_time_field(nullable=True)
    sender: str | None = Field(default=None, max_length=120)  # holder of the send lease: host:pid:nonce
    sender_lease_until: datetime | None = utc_time_field(nullable=True)
    # The expiry (Unix seconds) signed into every reader token of this issue, fixed by its first send:
    # a token names its issue by it (an unsubscribe or a vote from the issue's links).
    token_expires_at: int | None = Field(
        default=None, sa_column=Column(BigInteger, nullable=True, index=True)
    )

    @property
    def slug(self) -> str:
        """The URL and tag form of the week: 2026-W48 -> 2026-w48."""
        return issue_slug(self.week)


class IssueItem(SQLModel, table=True):
    """A comparison picked for an issue, in reading order."""

    __table_args__ = (UniqueConstraint("issue_id", "comparison_id"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    comparison_id: int = Field(foreign_key="comparison.id", index=True)
    position: int


class Delivery(SQLModel, table=True):
    """The ledger: one row per (issue, subscriber), written before anything is sent.

    `batch_key` names the request a row went out in: the idempotency key of that request, and what
    reconciliation asks the provider about after a crash. `claimed_by` and `lease_until` say which
    sender holds a row in flight and until when: a row whose lease ran out (its sender died) is taken
    over, reconciled and finished by another sender; a live one is never touched.
    """

    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        Index("ix_delivery_issue_status", "issue_id", "status", "id"),  # claims walk it in id order
        Index("ix_delivery_issue_sent_at", "issue_id", "sent_at"),  # a send's rate over its last minute
    )

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id")
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    status: str = Field(default=DeliveryStatus.QUEUED, max_length=20)
    batch_key: str | None = Field(default=None, max_length=64, index=True)
    claimed_at: datetime | None = utc_time_field(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=120)
    lease_until: datetime | None = utc_time_field(nullable=True)
    provider: str | None = Field(default=None, max_length=40)
    provider_message_id: str | None = Field(default=None, max_length=200, index=True)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = utc_time_field(default=utcnow)
    updated_at: datetime = utc_time_field(default=utcnow)
    sent_at: datetime | None = utc_time_field(nullable=True)


class ProviderEvent(SQLModel, table=True):
    """An event a provider reported about a message, stored once however often it is posted."""

    __table_args__ = (UniqueConstraint("provider", "event_key"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=40)
    event_key: str = Field(max_length=200)
    kind: str = Field(max_length=20, index=True)
    delivery_id: int | None = Field(default=None, foreign_key="delivery.id", index=True)
    subscriber_id: int | None = Field(default=None, foreign_key="subscriber.id", index=True)
    issue_id: int | None = Field(default=None, foreign_key="issue.id", index=True)
    provider_message_id: str | None = Field(default=None, max_length=200)
    detail: str | None = Field(default=None, max_length=1000)
    machine: bool | None = Field(default=None)  # the provider says a machine did it (None: it cannot tell)
    occurred_at: datetime = utc_time_field()
    received_at: datetime = utc_time_field(default=utcnow)


class IssueLink(SQLModel, table=True):
    """A link an issue really contained, written before its messages go out: the redirect answers only
    the (issue, code) pairs in this table, so it can never redirect anywhere else."""

    __table_args__ = (UniqueConstraint("issue_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    code: str = Field(max_length=16)
    kind: str = Field(max_length=20)
    url: str = Field(max_length=2000)
    label: str = Field(default="", max_length=300)
    comparison_slug: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_time_field(default=utcnow)


class LinkHit(SQLModel, table=True):
    """One request to a tracked link (or the pixel), stored raw and labelled human or machine.

    `agent` is the user agent's class, never the agent itself; `client_hash` a keyed hash of the
    client address. `reason` says which rule made it a machine ("" for a human). Hits older than
    NEWSLETTER_HIT_RETENTION_DAYS are folded into LinkCount and deleted.
    """

    __table_args__ = (Index("ix_linkhit_reader", "issue_id", "subscriber_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    link_id: int = Field(foreign_key="issuelink.id", index=True)
    at: datetime = utc_time_field(index=True)
    method: str = Field(max_length=10)
    agent: str = Field(max_length=40)
    prefetch: bool = Field(default=False)
    client_hash: str | None = Field(default=None, max_length=32)
    machine: bool = Field(default=False)
    reason: str = Field(default="", max_length=40)


class LinkCount(SQLModel, table=True):
    """Hits past their retention, folded into counts: per link, and per issue (`link_id` None) for
    the readers who clicked. No reader is named here."""

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    link_id: int | None = Field(default=None, foreign_key="issuelink.id", index=True)
    human: int = Field(default=0)
    machine: int = Field(default=0)
    human_readers: int = Field(default=0)
    updated_at: datetime = utc_time_field(default=utcnow)


class WebhookEndpoint(SQLModel, table=True):
    """A receiver of outgoing webhooks (newsletter/outgoing_webhooks). `events` is a comma-separated
    list of event types, or `*` for all of them, later ones included. `secret` is the endpoint's
    signing secret encrypted under a key derived from NEWSLETTER_SECRET_KEY: the store alone holds
    nothing that signs. `failing_since` is the first failure after the last success; an endpoint
    failing for NEWSLETTER_WEBHOOK_DISABLE_HOURS is disabled (`disabled_at`, `disabled_reason`)."""

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    events: str = Field(max_length=1000)
    secret: str = Field(max_length=200)
    enabled: bool = Field(default=True)
    disabled_at: datetime | None = utc_time_field(nullable=True)
    disabled_reason: str | None = Field(default=None, max_length=500)
    failing_since: datetime | None = utc_time_field(nullable=True)
    last_success_at: datetime | None = utc_time_field(nullable=True)
    last_failure_at: datetime | None = utc_time_field(nullable=True)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_time_field(default=utcnow)
    updated_at: datetime = utc_time_field(default=utcnow)


class WebhookMessage(SQLModel, table=True):
    """The outbox: one event for one endpoint, written in the transaction of the change it reports.

    `msg_id` is the `webhook-id` (the same for every endpoint of one event and on every retry);
    `subject` names what the event is about (`subscriber:12`, `issue:3`): an endpoint gets a
    subject's events one at a time, in `id` order. `status` moves pending -> delivered | failed
    (given up after the retry schedule); `lease_until` and `claimed_by` hold a message in flight."""

    __table_args__ = (
        UniqueConstraint("endpoint_id", "msg_id"),
        Index("ix_webhookmessage_queue", "endpoint_id", "subject", "id"),
        Index("ix_webhookmessage_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhookendpoint.id")
    msg_id: str = Field(max_length=40)
    type: str = Field(max_length=60)
    subject: str = Field(max_length=60)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=20)
    attempts: int = Field(default=0)
    created_at: datetime = utc_time_field(default=utcnow)
    next_attempt_at: datetime = utc_time_field(default=utcnow)
    lease_until: datetime | None = utc_time_field(nullable=True)
    claimed_by: str | None = Field(default=None, max_length=120)
    delivered_at: datetime | None = utc_time_field(nullable=True)
    last_error: str | None = Field(default=None, max_length=500)


class WebhookAttempt(SQLModel, table=True):
    """One try at delivering a message (or a `webhooks test`, without a message): kept for
    NEWSLETTER_WEBHOOK_RETENTION_DAYS. `response` is the start of the receiver's answer, bounded."""

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(foreign_key="webhookendpoint.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="webhookmessage.id", index=True)
    at: datetime = utc_time_field(index=True)
    status_code: int | None = Field(default=None)
    duration_ms: int = Field(default=0)
    error: str | None = Field(default=None, max_length=500)
    response: str | None = Field(default=None, max_length=500)


class EditorEvent(SQLModel, table=True):
    """A change an editor made in the console (who, when, what, to which issue or comparison),
    written in the same transaction as the change itself."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_time_field(default=utcnow, index=True)
    editor: str = Field(max_length=120)
    action: str = Field(max_length=40)
    issue_id: int | None = Field(default=None, foreign_key="issue.id", index=True)
    comparison_id: int | None = Field(default=None, foreign_key="comparison.id", index=True)
    detail: str | None = Field(default=None, max_length=2000)


class WelcomeMail(SQLModel, table=True):
    """A reader's welcome email: owed from their confirmation until it is handed to the provider.

    `due_at`: when a confirmation made one owed (None: nothing owed). `sent_at`: when the last one
    went out; the once-a-year rule reads it. `claimed_until`: the lease of the process sending it,
    and after a failure the earliest retry. No address is kept here."""

    subscriber_id: int = Field(primary_key=True, foreign_key="subscriber.id")
    due_at: datetime | None = utc_time_field(nullable=True, index=True)
    claimed_until: datetime | None = utc_time_field(nullable=True)
    sent_at: datetime | None = utc_time_field(nullable=True)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)


class SunsetAsk(SQLModel, table=True):
    """One "still want the weekly verdicts?" question to a reader who had no human click and cast no
    vote over the span of issues ending with `last_issue_id`: one per reader and span (the unique
    constraint is what makes two schedulers ask once). `sent_at` is when the question was handed to
    the provider; `answer_by` the end of the local day 14 days later, the date the email names.
    `outcome` stays None while the question is open, then: stayed (the button), engaged (a click, a
    vote or a preferences change since), sunset (let go), left (they left by other means), unsent (it
    could not be sent)."""

    __table_args__ = (UniqueConstraint("subscriber_id", "last_issue_id"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    last_issue_id: int = Field(foreign_key="issue.id", index=True)
    issues: int  # the span's length (NEWSLETTER_SUNSET_ISSUES when asked)
    asked_at: datetime = utc_time_field(default=utcnow)
    claimed_until: datetime | None = utc_time_field(nullable=True)
    sent_at: datetime | None = utc_time_field(nullable=True)
    answer_by: datetime | None = utc_time_field(nullable=True)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=500)
    outcome: str | None = Field(default=None, max_length=20, index=True)
    resolved_at: datetime | None = utc_time_field(nullable=True)


class StoreKey(SQLModel, table=True):
    """A key that belongs to the store, not to a process's settings: it must stay the same for as
    long as what it keyed lives, and travel with the store (`db copy`). `erasure` keys the hashes
    of erased addresses (newsletter/erasure.py). The value is hex."""

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(max_length=128)
    created_at: datetime = utc_time_field(default=utcnow)


class FoldedClick(SQLModel, table=True):
    """A reader's human hits on one link of an issue that retention folded away: kept as the fact
    alone (no time, no agent, no client), so the report's unique human readers stay exact across
    folds, per link and per issue. Erasing the reader deletes these rows with their hits."""

    issue_id: int = Field(foreign_key="issue.id", primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True, index=True)
    link_id: int = Field(foreign_key="issuelink.id", primary_key=True, index=True)


# --- indexes for the console's reports at scale (migration 0011) ---------------------------------
# Declared after the tables so that the classes above stay as they were. Each serves one query of
# newsletter/reports.py (or audience.py) with an index-only walk in the order the query groups by.

STATE_EVENTS = ("confirmed", "subscribed", "unsubscribed", "bounced", "complained", "erased", "suppressed")
_state_events = "kind IN (" + ", ".join(f"'{kind}'" for kind in STATE_EVENTS) + ")"

Index("ix_subscriberevent_at_kind", SubscriberEvent.__table__.c.at, SubscriberEvent.__table__.c.kind)  # weeks
_signup_again = "kind = 'signup_requested' AND detail = 'already active'"


@functools.cache
def partial_indexes() -> tuple[Index, ...]:
    """The two partial indexes, declared on the tables when a schema is made or compared
    (`newsletter.schema.metadata`), not at import: their `postgresql_where` and `sqlite_where`
    options load both dialects' modules, PostgreSQL's in every process on a SQLite store and the
    other way round (2 MB and 20-30 ms at each start)."""
    return (
        Index(  # the few signups that an active reader asked for again: no signup
            "ix_subscriberevent_signup_again",
            SubscriberEvent.__table__.c.at,
            postgresql_where=text(_signup_again),
            sqlite_where=text(_signup_again),
        ),
        Index(  # each reader's changes of state in id order: the list's size at a moment
            "ix_subscriberevent_state",
            *(SubscriberEvent.__table__.c[name] for name in ("subscriber_id", "id", "at", "kind")),
            postgresql_where=text(_state_events),
            sqlite_where=text(_state_events),
        ),
    )


Index(  # deliveries with an event of each kind
    "ix_providerevent_issue_kind_delivery",
    *(ProviderEvent.__table__.c[name] for name in ("issue_id", "kind", "delivery_id")),
)
Index(  # hits and readers per link and verdict, machine reasons, human readers
    "ix_linkhit_issue_machine_link",
    *(LinkHit.__table__.c[name] for name in ("issue_id", "machine", "link_id", "subscriber_id", "reason")),
)


class IssueRollup(SQLModel, table=True):
    """A costly part of an issue's report (`part`: ledger, events or hits), as its queries last
    found it: a cache that is exact or absent (newsletter/rollups.py). Database triggers (migration
    0012) delete it in the very transaction that changes what it counts; the ledger's is kept only
    for a sent issue, whose ledger rows are final until its status changes again."""

    issue_id: int = Field(foreign_key="issue.id", primary_key=True)
    part: str = Field(max_length=20, primary_key=True)
    figures: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    through_id: int | None = Field(default=None)  # hits, events: the highest row id counted (0013)
    computed_at: datetime = utc_time_field(default=utcnow)


class ListSize(SQLModel, table=True):
    """The list at a past moment (a week's end), from the event trail (`list_history`): its size and
    the events before it by kind. Exact or absent, like an issue's rollups: a trigger (migration
    0012) deletes every moment after an event that is inserted, changed or deleted (an erasure
    deletes a reader's past)."""

    moment: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    size: int
    counts: str = Field(sa_column=Column(Text, nullable=False))  # JSON: kind -> events before it
    computed_at: datetime = utc_time_field(default=utcnow)


@event.listens_for(SQLModel.metadata, "after_create")
def _rollup_triggers(target, connection, tables=(), **_kw) -> None:
    """A new store gets the triggers migration 0012 gives an existing one (once every table exists)."""
    if "issuerollup" not in {table.name for table in tables}:
        return
    from newsletter.rollup_triggers import create_statements

    for statement in create_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)
