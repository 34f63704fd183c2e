"""Rollups are exact or absent: after every kind of change to what they count (a hit, a provider's
event, a retry, an erasure, an event of the past), the report and the list's sizes read through them
are what counting the rows afresh gives, and a send under way is never rolled up. On SQLite, or on
PostgreSQL with NEWSLETTER_TEST_DATABASE (where the triggers are PL/pgSQL, once per statement)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from newsletter import rollups
from newsletter.db import make_engine, session_scope
from newsletter.ledger import retry_failed
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Issue,
    IssueLink,
    IssueRollup,
    IssueStatus,
    ListSize,
    ProviderEvent,
    Subscriber,
    SubscriberEvent,
)
from newsletter.reports import issue_headline, issue_report
from newsletter.store_copy import copy_store
from newsletter.subscriptions import erase, record_event
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import PendingHit, store_hits
from newsletter.weekly import last_weeks, list_movements, weekly_stats
from tests.databases import database_url
from tests.test_reports import busy, reference_movements  # noqa: F401  (a fixture)

PARTS = {"ledger", "events", "hits", "readers"}


def kept(engine, issue_id: int) -> set[str]:
    with Session(engine) as session:
        return set(session.exec(select(IssueRollup.part).where(IssueRollup.issue_id == issue_id)))


def read(engine, issue_id: int) -> dict:
    """The report and headline as the console reads them (through the rollups, made if absent)."""
    with session_scope(engine) as session:
        return {
            "report": issue_report(session, issue_id).as_json(),
            **issue_headline(session, issue_id).as_json(),
        }


def counted(engine, issue_id: int) -> dict:
    """The same counted from the rows alone, every rollup dropped first."""
    with session_scope(engine) as session:
        rollups.forget(session)
    found = read(engine, issue_id)
    with session_scope(engine) as session:
        rollups.forget(session)
    return found


def test_the_report_through_its_rollups_follows_every_change(engine, busy):  # noqa: F811
    issue_id, readers = busy
    first = read(engine, issue_id)
    assert kept(engine, issue_id) == PARTS, "the send is over: every part is kept"
    assert read(engine, issue_id) == first == counted(engine, issue_id)
    read(engine, issue_id)
    with session_scope(engine) as session:
        links = {link.kind: link.id for link in session.exec(select(IssueLink))}
        at = datetime.now(UTC) + timedelta(hours=5)
        store_hits(
            session,
            [PendingHit(issue_id, readers[7], links["web"], "web", at, "GET", "browser", False, None)],
            Rules(),
        )
    assert kept(engine, issue_id) == PARTS, "a new hit leaves the rollups standing: a view adds it"
    after_hit = read(engine, issue_id)
    assert after_hit["report"]["clicks"]["human"] == first["report"]["clicks"]["human"] + 1
    assert after_hit == counted(engine, issue_id)

    read(engine, issue_id)
    with session_scope(engine) as session:
        delivery = session.exec(select(Delivery.id).where(Delivery.subscriber_id == readers[6])).one()
        session.add(
            ProviderEvent(
                provider="postmark",
                event_key="late",
                kind="delivered",
                delivery_id=delivery,
                subscriber_id=readers[6],
                issue_id=issue_id,
                occurred_at=at,
            )
        )
    assert kept(engine, issue_id) == PARTS, "so does a new provider event"
    after_event = read(engine, issue_id)
    assert after_event["delivered"] == after_hit["delivered"] + 1
    assert after_event == counted(engine, issue_id)

    read(engine, issue_id)
    with session_scope(engine) as session:  # a send that failed one reader, as a provider outage does
        issue = session.get(Issue, issue_id)
        issue.status = IssueStatus.SENDING
        session.add(issue)
        session.flush()
        session.execute(
            update(Delivery).where(Delivery.subscriber_id == readers[5]).values(status=DeliveryStatus.FAILED)
        )
        issue.status = IssueStatus.SENT
        session.add(issue)
    assert "ledger" not in kept(engine, issue_id), "the issue's status moved: its ledger is counted again"
    failed = read(engine, issue_id)
    assert failed["report"]["ledger"] == {"sent": 7, "failed": 1}
    assert failed == counted(engine, issue_id)

    read(engine, issue_id)
    with session_scope(engine) as session:
        assert retry_failed(session, issue_id) == 1  # the issue is sending again
    assert "ledger" not in kept(engine, issue_id)
    retried = read(engine, issue_id)
    assert retried["report"]["ledger"] == {"sent": 7, "queued": 1}
    assert "ledger" not in kept(engine, issue_id), "never kept while the send is under way"
    assert retried == counted(engine, issue_id)

    with session_scope(engine) as session:
        session.execute(update(Issue).where(Issue.id == issue_id).values(status=IssueStatus.SENT))
        session.execute(update(Delivery).where(Delivery.status == "queued").values(status="sent"))
    read(engine, issue_id)
    with session_scope(engine) as session:  # an erasure deletes the reader's hits
        erase(session, session.get(Subscriber, readers[1]))
    assert not {"hits", "readers"} & kept(engine, issue_id)
    erased = read(engine, issue_id)
    assert erased["report"]["clicks"] != after_event["report"]["clicks"]
    assert erased == counted(engine, issue_id)


def test_the_lists_past_sizes_are_kept_and_follow_changes_to_the_past(engine, settings):
    now = datetime(2026, 4, 15, 12, tzinfo=UTC)
    start = now - timedelta(weeks=10)
    with session_scope(engine) as session:
        readers = []
        for n in range(30):
            reader = Subscriber(email=f"s{n}@example.com", status="active")
            session.add(reader)
            session.flush()
            readers.append(reader)
            record_event(session, reader, "confirmed", source="test", at=start + timedelta(days=2 * n))
            if n % 4 == 0:
                record_event(
                    session, reader, "unsubscribed", source="test", at=start + timedelta(days=2 * n + 9)
                )

    def movements():
        with session_scope(engine) as session:
            return [
                (row.week, row.list_size, row.signups, row.confirmations, row.leaves)
                for row in list_movements(session, 8, settings.zone, now)
            ]

    def reference():
        with session_scope(engine) as session:
            return reference_movements(session, 8, settings.zone, now)

    def sizes_kept() -> int:
        with Session(engine) as session:
            return len(session.exec(select(ListSize)).all())

    assert movements() == reference()
    assert sizes_kept() == 9, "the first week's start and every week's end are past: all kept"
    expected = reference()[-1][1]
    with session_scope(engine) as session:  # the next reads start from a kept size
        assert list_movements(session, 3, settings.zone, now)[-1].list_size == expected

    middle = last_weeks(8, settings.zone, now)[4].bounds(settings.zone)[0] + timedelta(hours=1)
    with session_scope(engine) as session:  # an event of the past (an import with its own times)
        record_event(session, readers[-1], "confirmed", source="import", at=middle)
    assert sizes_kept() == 5, "the points after it are gone, those before stay"
    assert movements() == reference()

    with session_scope(engine) as session:  # an erasure takes the reader's past with it
        erase(session, session.get(Subscriber, readers[3].id))
    assert sizes_kept() < 9
    assert movements() == reference()

    with session_scope(engine) as session:  # an event moved in time
        event = session.exec(select(SubscriberEvent).where(SubscriberEvent.kind == "unsubscribed")).first()
        event.at = start
        session.add(event)
    assert movements() == reference()


def test_the_weekly_figures_of_a_sent_issue_come_from_its_rollups(engine, settings, busy):  # noqa: F811
    issue_id, _ = busy
    with session_scope(engine) as session:
        first = [row.as_json() for row in weekly_stats(session, 2, settings.zone)]
    assert kept(engine, issue_id) == {"ledger", "readers"}, "the weeks need no more"
    assert first == [row.as_json() for row in _stats_afresh(engine, settings)]


def _stats_afresh(engine, settings):
    with session_scope(engine) as session:
        rollups.forget(session)
        session.execute(ListSize.__table__.delete())
    with session_scope(engine) as session:
        return weekly_stats(session, 2, settings.zone)


def test_a_caller_that_writes_what_a_rollup_counts_gets_the_figures_counted_live(engine, busy):  # noqa: F811
    """The caller's own transaction holds the rows a rollup must hold still: on PostgreSQL the
    rollup's transaction cannot lock them, gives up after a moment and the caller counts live."""
    issue_id, readers = busy
    with session_scope(engine) as session:
        rollups.forget(session)
    with session_scope(engine) as session:
        links = {link.kind: link.id for link in session.exec(select(IssueLink))}
        at = datetime.now(UTC) + timedelta(hours=5)
        hit = PendingHit(issue_id, readers[7], links["web"], "web", at, "GET", "browser", False, None)
        store_hits(session, [hit], Rules())
        report = issue_report(session, issue_id).as_json()
    assert report == counted(engine, issue_id)["report"]


def test_a_copied_store_leaves_its_kept_figures_behind(engine, busy, tmp_path):  # noqa: F811
    """`db copy` copies the rows, not what was counted from them: the target counts afresh."""
    issue_id, _ = busy
    first = read(engine, issue_id)
    assert kept(engine, issue_id) == PARTS
    (tmp_path / "copy").mkdir()
    target = make_engine(database_url(tmp_path / "copy"))
    try:
        counts = {count.table: count.target for count in copy_store(engine, target)}
        assert "issuerollup" not in counts and "listsize" not in counts and counts["delivery"] == 8
        assert kept(target, issue_id) == set()
        assert read(target, issue_id) == first
    finally:
        target.dispose()
