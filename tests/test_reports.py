"""The report's queries on a small store with every kind of row: the headline agrees with the full
report, and both add up with the rows themselves (SQLite, or PostgreSQL with NEWSLETTER_TEST_DATABASE)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose
from newsletter.models import Delivery, IssueLink, ProviderEvent, Subscriber
from newsletter.providers import OutboxProvider
from newsletter.reports import issue_headline, issue_report
from newsletter.samples import dated_into_week, sample_comparisons
from newsletter.subscriptions import add_active, unsubscribe
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import PendingHit, store_hits
from tests.conftest import TEST_KEY

READERS = 8


@pytest.fixture
def busy(settings, engine):
    """An issue sent to eight readers who then clicked (people and scanners), bounced, complained,
    were delivered to twice over and left: (issue id, reader ids)."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(sample_comparisons(), now, settings.zone), settings.zone)
        add_active(
            session, [f"r{n}@example.com" for n in range(READERS)], source="test", key=TEST_KEY.encode()
        )
        issue_id = compose(session, Week.containing(now, settings.zone), settings).issue.id
    asyncio.run(Sender(engine, settings, OutboxProvider(settings.outbox_dir)).send(issue_id))
    later = now + timedelta(hours=3)
    with session_scope(engine) as session:
        readers = list(session.exec(select(Subscriber.id).order_by(Subscriber.id)))
        links = {link.kind: link.id for link in session.exec(select(IssueLink))}
        deliveries = dict(session.exec(select(Delivery.subscriber_id, Delivery.id)).all())
        outcomes = ["delivered"] * 5 + ["bounced", "soft_bounced", "complained"]
        for n, (reader, kind) in enumerate(zip(readers, outcomes, strict=True)):
            for copy in range(2 if n == 0 else 1):  # the provider posted the first one twice
                session.add(
                    ProviderEvent(
                        provider="postmark",
                        event_key=f"{reader}-{copy}",
                        kind=kind,
                        delivery_id=deliveries[reader],
                        subscriber_id=reader,
                        issue_id=issue_id,
                        occurred_at=now,
                    )
                )
        hits = []
        for n, reader in enumerate(readers[:6]):
            at = later + timedelta(minutes=n)
            hits.append(
                PendingHit(
                    issue_id, reader, links["comparison"], "comparison", at, "GET", "browser", False, None
                )
            )
            if n % 2:
                hits.append(
                    PendingHit(issue_id, reader, links["decoy"], "decoy", at, "GET", "browser", False, None)
                )
            if n == 4:
                hits.append(
                    PendingHit(
                        issue_id,
                        reader,
                        links["web"],
                        "web",
                        at + timedelta(minutes=30),
                        "GET",
                        "browser",
                        False,
                        None,
                    )
                )
        store_hits(session, hits, Rules())
    with session_scope(engine) as session:
        unsubscribe(session, readers[7], source="one-click", client=None, issue_id=issue_id)
        unsubscribe(session, readers[6], source="unsubscribe page", client=None, issue_id=issue_id)
    return issue_id, readers


def test_the_headline_is_the_reports_own_figures(engine, busy):
    issue_id, _ = busy
    with session_scope(engine) as session:
        report = issue_report(session, issue_id)
        headline = issue_headline(session, issue_id)
    assert headline.recipients == report.recipients == READERS
    assert headline.delivered == report.delivered == 5  # the one posted twice counts once
    assert headline.bounces == report.bounced["hard"] + report.bounced["soft"] == 2
    assert headline.complaints == report.complaints == 1
    assert headline.unsubscribes == report.unsubscribes["total"] == 2
    assert headline.human_readers == report.clicks["human_readers"] == 3  # the decoy's burst are machines
    assert headline.human_click_rate == round(3 / READERS, 4)
    assert headline.week == report.week and headline.as_json()["human_click_rate"] == 0.375
    with session_scope(engine) as session, pytest.raises(LookupError):
        issue_headline(session, issue_id + 99)
