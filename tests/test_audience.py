"""The console's readers: a reader found by address with their state, events, deliveries and clicks
(bounded, newest first), an erased address found only by its keyed hash and nothing more, and the
list's growth week by week, figured from real rows (SQLite, or PostgreSQL with
NEWSLETTER_TEST_DATABASE)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.audience import find_reader, list_growth
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose
from newsletter.headers import HeaderValueError
from newsletter.models import Delivery, Issue, IssueLink, ProviderEvent, Subscriber, SubscriberStatus
from newsletter.providers import OutboxProvider
from newsletter.samples import dated_into_week, sample_comparisons
from newsletter.subscriptions import (
    add_active,
    erase,
    pause,
    record_event,
    request_signup,
    set_categories,
    set_tracking,
    unsubscribe,
)
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import PendingHit, store_hits
from newsletter.weekly import weekly_stats
from tests.conftest import TEST_KEY, at

KEY = TEST_KEY.encode()


@pytest.fixture
def sent(settings, engine):
    """This week's issue sent through the outbox to three readers: (issue id, {email: id}, links)."""
    now = datetime.now(UTC)
    emails = ["ann@example.com", "bob@example.com", "cy@example.com"]
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(sample_comparisons(), now, settings.zone), settings.zone)
        add_active(session, emails, source="import", key=KEY)
        issue_id = compose(session, Week.containing(now, settings.zone), settings).issue.id
    asyncio.run(Sender(engine, settings, OutboxProvider(settings.outbox_dir)).send(issue_id))
    with session_scope(engine) as session:
        ids = dict(session.exec(select(Subscriber.email, Subscriber.id)).all())
        links = {link.kind: link for link in session.exec(select(IssueLink))}
    return issue_id, ids, links


def test_a_reader_is_found_by_any_spelling_of_their_address_with_all_they_did(engine, sent):
    issue_id, ids, links = sent
    ann = ids["ann@example.com"]
    arrived = datetime.now(UTC) + timedelta(hours=2)
    with session_scope(engine) as session:
        reader = session.get(Subscriber, ann)
        set_categories(session, reader, ["Developer Tools"], ["Developer Tools", "Design"], client=None)
        pause(session, reader, 2, client=None)
        delivery = session.exec(select(Delivery).where(Delivery.subscriber_id == ann)).one()
        session.add(
            ProviderEvent(
                provider="postmark",
                event_key="d-1",
                kind="delivered",
                delivery_id=delivery.id,
                subscriber_id=ann,
                issue_id=issue_id,
                occurred_at=arrived - timedelta(minutes=1),
            )
        )
        store_hits(
            session,
            [
                PendingHit(
                    issue_id,
                    ann,
                    links["comparison"].id,
                    "comparison",
                    arrived,
                    "GET",
                    "browser",
                    False,
                    None,
                ),
                PendingHit(
                    issue_id,
                    ann,
                    links["site"].id,
                    "site",
                    arrived + timedelta(minutes=5),
                    "HEAD",
                    "browser",
                    False,
                    None,
                ),
            ],
            Rules(),
        )
    with session_scope(engine) as session:
        set_tracking(session, session.get(Subscriber, ann), False, client=None)
        unsubscribe(session, ann, source="one-click", client="203.0.113.9", issue_id=issue_id)

    with session_scope(engine) as session:
        record = find_reader(session, "  ANN@Example.COM ", KEY)
        week = session.get(Issue, issue_id).week
    assert record is not None and record.subscriber_id == ann and record.email == "ann@example.com"
    assert (record.status, record.source, record.tracking) == ("unsubscribed", "import", False)
    assert record.categories == ("Developer Tools",)
    assert record.paused and record.paused_until > datetime.now(UTC) + timedelta(days=13)
    assert record.created_at and record.confirmed_at <= record.unsubscribed_at
    assert not record.erased and record.erased_at is None
    kinds = [event.kind for event in record.events]
    assert kinds == ["unsubscribed", "tracking", "paused", "categories", "subscribed"]  # newest first
    assert record.events_total == 5
    assert record.events[0].issue == week  # it left from this issue
    assert [event.issue for event in record.events[1:]] == [None] * 4
    assert record.events[0].source == "one-click" and record.events[1].detail == "off"
    (delivered,) = record.deliveries
    assert (delivered.status, delivered.outcomes, delivered.error) == ("sent", ("delivered",), None)
    assert delivered.sent_at is not None and record.deliveries_total == 1
    assert [(c.kind, c.url, c.method, c.machine, c.reason) for c in record.clicks] == [
        ("site", links["site"].url, "HEAD", True, "method:HEAD"),
        ("comparison", links["comparison"].url, "GET", False, ""),
    ]
    assert record.clicks[1].label == links["comparison"].label and record.clicks_total == 2
    assert json.dumps(record.as_json(), default=str)  # plain data, for an export button

    with session_scope(engine) as session:
        bounded = find_reader(session, "ann@example.com", KEY, limit=2)
    assert [e.kind for e in bounded.events] == ["unsubscribed", "tracking"] and bounded.events_total == 5
    assert len(bounded.clicks) == 2 and bounded.clicks_total == 2


def test_an_erased_address_says_so_and_nothing_else(engine, sent):
    _, ids, _ = sent
    with session_scope(engine) as session:
        erase(session, session.get(Subscriber, ids["bob@example.com"]))
    with session_scope(engine) as session:
        record = find_reader(session, "Bob@example.com", KEY)
        assert find_reader(session, "nobody@example.com", KEY) is None
        # keyed by the store's own erasure key: found whatever the signing key is now
        assert find_reader(session, "bob@example.com", b"another key" * 4).erased_at == record.erased_at
        with pytest.raises(HeaderValueError):
            find_reader(session, "not an address", KEY)
    assert record.erased and record.status == "erased" and record.subscriber_id is None
    assert record.erased_at is not None
    assert (record.events, record.deliveries, record.clicks) == ([], [], [])
    assert (record.source, record.created_at, record.categories, record.tracking) == (None, None, None, None)
    known = {name for name, value in record.as_json().items() if value not in (None, [], 0, False)}
    assert known == {"email", "status", "erased_at", "erased"}  # what was typed, and when it was erased

    with session_scope(engine) as session:  # they typed their address into the form again
        request_signup(session, "bob@example.com", source="form", client=None, per_address=(3, 3600))
    with session_scope(engine) as session:
        again = find_reader(session, "bob@example.com", KEY)
    assert again.subscriber_id is not None and again.status == SubscriberStatus.PENDING
    assert again.erased_at == record.erased_at and not again.erased


NOW = at("2026-03-18T12:00:00Z")  # a Wednesday of 2026-W12


def test_the_list_grows_week_by_week_from_its_event_trail(engine, settings):
    def on(week: str, day: int, hour: int = 12) -> datetime:
        return (Week.parse(week).bounds(settings.zone)[0] + timedelta(days=day, hours=hour)).astimezone(UTC)

    trail = {
        "a": [("signup_requested", on("2026-W09", 1)), ("confirmed", on("2026-W09", 2))],
        "b": [("subscribed", on("2026-W10", 0, 0))],  # the first hour of Monday, local time
        "c": [
            ("signup_requested", on("2026-W10", 3)),
            ("confirmed", on("2026-W11", 0)),
            ("unsubscribed", on("2026-W12", 1)),
        ],
        "e": [("subscribed", on("2026-W09", 4)), ("bounced", on("2026-W11", 2))],
        "f": [("signup_requested", on("2026-W12", 0))],
        "g": [("erased", on("2026-W10", 5))],  # erasing left only this event
        "h": [("subscribed", on("2026-W08", 6, 23) - timedelta(minutes=30))],  # Sunday 22:30 local, W08
    }
    with session_scope(engine) as session:
        for name, events in trail.items():
            reader = Subscriber(email=f"{name}@example.com", status="active")
            session.add(reader)
            session.flush()
            for kind, moment in events:
                record_event(session, reader, kind, source="test", at=moment)
        a = session.exec(select(Subscriber).where(Subscriber.email == "a@example.com")).one()
        record_event(
            session, a, "signup_requested", source="form", detail="already active", at=on("2026-W11", 1)
        )

    with session_scope(engine) as session:
        growth = list_growth(session, 4, settings.zone, now=NOW)
        stats = weekly_stats(session, 4, settings.zone, now=NOW)
    assert [w.week for w in growth] == ["2026-W09", "2026-W10", "2026-W11", "2026-W12"]
    assert growth[0].monday.isoformat() == "2026-02-23"
    assert [w.list_size for w in growth] == [3, 4, 4, 3]  # h, a, e; + b; - e + c; - c
    assert [w.signups for w in growth] == [1, 1, 0, 1]  # "already active" is no signup
    assert [w.confirmations for w in growth] == [1, 0, 1, 0]
    assert [w.leaves for w in growth] == [
        {"unsubscribed": 0, "bounced": 0, "complained": 0, "erased": 0},
        {"unsubscribed": 0, "bounced": 0, "complained": 0, "erased": 1},
        {"unsubscribed": 0, "bounced": 1, "complained": 0, "erased": 0},
        {"unsubscribed": 1, "bounced": 0, "complained": 0, "erased": 0},
    ]
    assert [w.left for w in growth] == [0, 1, 1, 1]
    assert [(s.week, s.list_size, s.signups, s.confirmations, s.leaves) for s in stats] == [
        (w.week, w.list_size, w.signups, w.confirmations, w.leaves) for w in growth
    ]
    assert growth[-1].as_json()["monday"] == "2026-03-16" and growth[-1].as_json()["left"] == 1
    with session_scope(engine) as session:
        assert [w.list_size for w in list_growth(session, 2, UTC, now=NOW)] == [4, 3]
