"""Writing events to the outbox, in the transaction of the change they report.

An event becomes one `WebhookMessage` per endpoint that wants its type (enabled or not: a disabled
endpoint gets what it missed once it is enabled again), in the caller's session, so the change and
its messages commit together or not at all: a crash never loses an event nor invents one. With no
endpoint, nothing is written beyond one small query.

Reader events are caught where they are stored, whoever stores them: the session hooks below see
every `SubscriberEvent` written through a session, one by one (`session.add`) or in bulk
(`session.execute(insert(SubscriberEvent), rows)`), and map it by kind (`events.KINDS`). A bulk
insert without its rows as parameters (`.values(...)`, `from_select`) is refused: its events could
not be seen. Votes and the end of a send call `vote_recorded` and `issue_sent` themselves.

Order per reader: messages are delivered to an endpoint in `id` order per subject. On PostgreSQL the
reader's row is locked (`FOR NO KEY UPDATE`) before a message is written, so two transactions
writing about one reader take turns and their ids follow their commits; SQLite has one writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, update
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session, col, select

from newsletter.models import Issue, Subscriber, SubscriberEvent, WebhookEndpoint, WebhookMessage, utcnow
from newsletter.outgoing_webhooks import events
from newsletter.outgoing_webhooks.signing import new_message_id

_CHUNK = 900  # under SQLite's bound-parameter limit in IN (...) lists


def wants(endpoint_events: str, event_type: str) -> bool:
    return endpoint_events == events.ALL or event_type in endpoint_events.split(",")


class _Endpoints:
    """The endpoints and the types they want, read once per batch of events."""

    def __init__(self, session: Session):
        with session.no_autoflush:
            self.rows = list(session.exec(select(WebhookEndpoint.id, WebhookEndpoint.events)))

    def __bool__(self) -> bool:
        return bool(self.rows)

    def wanting(self, event_type: str) -> list[int]:
        return [endpoint_id for endpoint_id, wanted in self.rows if wants(wanted, event_type)]


def _lock_readers(session: Session, ids: Sequence[int]) -> None:
    """PostgreSQL: hold the readers' rows until commit, so events about one reader get ids in commit
    order. NO KEY UPDATE does not wait on (or block) rows that merely refer to the reader."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        session.execute(
            select(Subscriber.id).where(col(Subscriber.id).in_(chunk)).with_for_update(key_share=True)
        )


def _rows(
    endpoint_ids: Iterable[int], event_type: str, subject: str, data: dict[str, Any], at: datetime
) -> list[dict[str, Any]]:
    body = events.envelope(event_type, data, at)
    msg_id, now = new_message_id(), utcnow()
    return [
        {
            "endpoint_id": endpoint_id,
            "msg_id": msg_id,
            "type": event_type,
            "subject": subject,
            "payload": body,
            "status": "pending",
            "attempts": 0,
            "created_at": at,
            "next_attempt_at": now,
        }
        for endpoint_id in endpoint_ids
    ]


def _write(session: Session, rows: list[dict[str, Any]]) -> int:
    """Add the messages to the session (ORM objects: the hooks may run inside a flush)."""
    session.add_all(WebhookMessage(**row) for row in rows)
    return len(rows)


def enqueue(
    session: Session,
    event_type: str,
    subject: str,
    data: dict[str, Any],
    *,
    at: datetime | None = None,
    reader_id: int | None = None,
    endpoints: _Endpoints | None = None,
) -> int:
    """Write one event for every endpoint that wants `event_type`; returns how many messages.
    `reader_id`: the reader it is about (their row is locked, see above)."""
    wanting = (endpoints or _Endpoints(session)).wanting(event_type)
    if not wanting:
        return 0
    if reader_id is not None:
        _lock_readers(session, [reader_id])
    return _write(session, _rows(wanting, event_type, subject, data, at or utcnow()))


def reader_subject(subscriber_id: int) -> str:
    return f"subscriber:{subscriber_id}"


def _issue_slug(session: Session, issue_id: int | None) -> str | None:
    if issue_id is None:
        return None
    issue = session.get(Issue, issue_id)
    return issue.slug if issue is not None else None


def forget_address(session: Session, subscriber_id: int) -> int:
    """Blank an erased reader's address in every stored message about them (pending or kept)."""
    subject = reader_subject(subscriber_id)
    stored = session.exec(
        select(WebhookMessage.id, WebhookMessage.payload).where(WebhookMessage.subject == subject)
    ).all()
    for message_id, payload in stored:
        session.execute(
            update(WebhookMessage)
            .where(col(WebhookMessage.id) == message_id)
            .values(payload=events.without_email(payload))
        )
    return len(stored)


def _reader_event(
    session: Session,
    endpoints: _Endpoints,
    who: Subscriber,
    kind: str,
    source: str,
    detail: str | None,
    issue_id: int | None,
    at: datetime | None,
) -> list[dict[str, Any]]:
    event_type = events.subscriber_type(kind, who.status)
    if event_type == events.ERASED:
        forget_address(session, who.id)
    wanting = endpoints.wanting(event_type) if event_type else []
    if not wanting:
        return []
    data = events.subscriber_data(
        event_type,
        events.reader(
            who.id,
            who.email,
            who.status,
            source=who.source,
            created_at=who.created_at,
            confirmed_at=who.confirmed_at,
        ),
        source=source,
        detail=detail,
        issue=_issue_slug(session, issue_id),
    )
    return _rows(wanting, event_type, reader_subject(who.id), data, at or utcnow())


@event.listens_for(Session, "before_flush")
def _reader_events_added(session: Session, _context, _instances) -> None:
    """Reader events added to the session (`record_event`, `session.add`) get their messages in the
    same flush."""
    added = [item for item in session.new if isinstance(item, SubscriberEvent)]
    added = [item for item in added if item.subscriber_id is not None and item.kind in events.KINDS]
    if not added:
        return
    with session.no_autoflush:
        endpoints = _Endpoints(session)
        if not endpoints and not any(item.kind == "erased" for item in added):
            return
        readers = {item.subscriber_id: session.get(Subscriber, item.subscriber_id) for item in added}
        rows: list[dict[str, Any]] = []
        for item in added:
            who = readers[item.subscriber_id]
            if who is not None:
                rows += _reader_event(
                    session, endpoints, who, item.kind, item.source, item.detail, item.issue_id, item.at
                )
        if rows:
            _lock_readers(session, sorted({int(row["subject"].split(":")[1]) for row in rows}))
            _write(session, rows)


@event.listens_for(Session, "do_orm_execute")
def _reader_events_inserted(state: ORMExecuteState):
    """Reader events inserted in bulk (`session.execute(insert(SubscriberEvent), rows)`, as the CSV
    import does) get their messages in bulk, after the insert, in the same transaction."""
    table = getattr(state.statement, "table", None) if state.is_insert else None
    if getattr(table, "name", None) != SubscriberEvent.__tablename__:
        return None
    parameters = state.parameters
    rows = [parameters] if isinstance(parameters, dict) else list(parameters or [])
    if not rows or any(not isinstance(row, dict) for row in rows):
        raise RuntimeError(
            "insert SubscriberEvent rows as parameters (session.execute(insert(SubscriberEvent), rows)) "
            "so that the outgoing webhooks see them"
        )
    result = state.invoke_statement()
    _bulk(state.session, rows)
    return result


def _bulk(session: Session, inserted: list[dict[str, Any]]) -> None:
    relevant = [
        row for row in inserted if row.get("subscriber_id") is not None and row.get("kind") in events.KINDS
    ]
    if not relevant:
        return
    endpoints = _Endpoints(session)
    if not endpoints and not any(row["kind"] == "erased" for row in relevant):
        return
    ids = sorted({row["subscriber_id"] for row in relevant})
    _lock_readers(session, ids)
    readers: dict[int, Subscriber] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        readers.update(
            (s.id, s) for s in session.exec(select(Subscriber).where(col(Subscriber.id).in_(chunk)))
        )
    messages: list[dict[str, Any]] = []
    for row in relevant:
        who = readers.get(row["subscriber_id"])
        if who is not None:
            messages += _reader_event(
                session,
                endpoints,
                who,
                row["kind"],
                row.get("source") or "",
                row.get("detail"),
                row.get("issue_id"),
                row.get("at"),
            )
    for start in range(0, len(messages), 5_000):
        session.execute(insert(WebhookMessage), messages[start : start + 5_000])


def vote_recorded(
    session: Session,
    subscriber_id: int,
    *,
    comparison: str,
    tool: str,
    verdict: str,
    issue_id: int | None,
) -> int:
    """A reader's vote (new or changed), from `newsletter.votes.record_vote`."""
    endpoints = _Endpoints(session)
    if not endpoints.wanting(events.VOTE_RECORDED):
        return 0
    who = session.get(Subscriber, subscriber_id)
    data = {
        "subscriber": events.reader(subscriber_id, who.email if who else None, who.status if who else None),
        "comparison": comparison,
        "tool": tool,
        "verdict": verdict,
        "issue": _issue_slug(session, issue_id),
    }
    subject = reader_subject(subscriber_id)
    return enqueue(session, events.VOTE_RECORDED, subject, data, reader_id=subscriber_id, endpoints=endpoints)


def issue_sent(
    session: Session,
    issue: Issue,
    *,
    subject_line: str | None,
    web_url: str,
    counts: dict[str, int],
    failures: list[tuple[str, int]],
    again: bool,
) -> int:
    """The issue became `sent` (in the transaction that says so): its summary from the ledger.
    `again`: it had been sent before, and a retry of its failed deliveries finished it again."""
    data = {
        "issue": {
            "id": issue.id,
            "week": issue.week,
            "slug": issue.slug,
            "subject": events.cut(subject_line, 200),
            "url": web_url,
            "send_started_at": events.iso(issue.send_started_at),
            "sent_at": events.iso(issue.sent_at),
        },
        "summary": {
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "suppressed": counts.get("suppressed", 0),
            "failures": [
                {"reason": events.cut(reason, 200), "count": count} for reason, count in failures[:5]
            ],
        },
        "again": again,
    }
    return enqueue(session, events.ISSUE_SENT, f"issue:{issue.id}", data)
