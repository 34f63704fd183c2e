"""The report's queries on small stores with every kind of row: the headline agrees with the full
report, which adds up with the rows themselves, and the list's movements, now figured in two passes,
are exactly what the week-by-week queries gave (SQLite, or PostgreSQL with NEWSLETTER_TEST_DATABASE)."""

from __future__ import annotations

import asyncio
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose
from newsletter.models import STATE_EVENTS, Delivery, IssueLink, ProviderEvent, Subscriber, SubscriberEvent
from newsletter.providers import OutboxProvider
from newsletter.reports import ALREADY_ACTIVE, LEAVES, SIGNUP_REQUESTED, issue_headline, issue_report
from newsletter.samples import dated_into_week, sample_comparisons
from newsletter.subscriptions import add_active, record_event, unsubscribe
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import PendingHit, store_hits
from newsletter.weekly import JOINS, last_weeks, list_movements
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
        for key, kind, delivery in (("lost", "bounced", None), ("o", "opened", deliveries[readers[0]])):
            session.add(  # an event tied to no delivery, and an open: neither is an outcome of one
                ProviderEvent(
                    provider="postmark",
                    event_key=key,
                    kind=kind,
                    delivery_id=delivery,
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


# --- the list's movements, against the query they replaced -----------------------------------------


def reference_movements(session, weeks: int, zone, now) -> list[tuple]:
    """The figures as `weekly_stats` computed them before (a week at a time, a size query per week):
    the optimised `list_movements` must give exactly these."""

    def size_at(moment):
        states = ("confirmed", "subscribed", *LEAVES, "suppressed")
        latest = (
            select(SubscriberEvent.subscriber_id, func.max(SubscriberEvent.id).label("last"))
            .where(SubscriberEvent.at < moment, SubscriberEvent.kind.in_(states))
            .group_by(SubscriberEvent.subscriber_id)
            .subquery()
        )
        query = (
            select(func.count())
            .select_from(latest)
            .join(SubscriberEvent, SubscriberEvent.id == latest.c.last)
            .where(SubscriberEvent.kind.in_(JOINS))
        )
        return session.execute(query).scalar_one()

    rows = []
    for week in last_weeks(weeks, zone, now):
        start, end = week.bounds(zone)
        kinds = dict(
            session.execute(
                select(SubscriberEvent.kind, func.count())
                .where(SubscriberEvent.at >= start, SubscriberEvent.at < end)
                .group_by(SubscriberEvent.kind)
            ).all()
        )
        requested = session.execute(
            select(func.count()).where(
                SubscriberEvent.at >= start,
                SubscriberEvent.at < end,
                SubscriberEvent.kind == "signup_requested",
                SubscriberEvent.detail.is_distinct_from("already active"),
            )
        ).scalar_one()
        leaves = {reason: kinds.get(reason, 0) for reason in LEAVES}
        rows.append((week.label, size_at(end), requested, kinds.get("confirmed", 0), leaves))
    return rows


def test_the_lists_movements_are_the_figures_of_the_week_by_week_queries(engine, settings):
    """A trail made to trip a shortcut: events written out of time order (ids do not follow time),
    events on the very instant a week ends, readers who join and leave several times, erased ones,
    events of no reader, and weeks across a change of daylight saving time."""
    rng = random.Random(13)
    now = datetime(2026, 4, 15, 12, tzinfo=UTC)  # 2026-W16; Europe/Berlin moved its clocks in W13
    kinds = ["confirmed", "subscribed", "unsubscribed", "bounced", "complained", "erased", "suppressed"]
    kinds += ["signup_requested", "paused", "categories"]
    boundaries = [w.bounds(settings.zone)[1] for w in last_weeks(16, settings.zone, now)]
    planned = []
    with session_scope(engine) as session:
        readers = []
        for n in range(80):
            reader = Subscriber(email=f"m{n}@example.com", status="active")
            session.add(reader)
            session.flush()
            readers.append(reader)
        for reader in readers:
            for _ in range(rng.randint(1, 7)):
                moment = now - timedelta(seconds=rng.randint(0, 18 * 7 * 86400))
                if rng.random() < 0.1:
                    moment = rng.choice(boundaries)  # the very instant a week ends
                detail = "already active" if rng.random() < 0.2 else None
                planned.append((reader, rng.choice(kinds), moment, detail))
        rng.shuffle(planned)  # written out of time order
        for reader, kind, moment, detail in planned:
            record_event(session, reader, kind, source="test", detail=detail, at=moment)
        for kind, days in (("subscribed", 120), ("unsubscribed", 50), ("confirmed", 30)):  # of no reader
            session.add(SubscriberEvent(kind=kind, source="test", at=now - timedelta(days=days)))
            session.flush()
    with session_scope(engine) as session:
        for zone in (settings.zone, UTC):
            for weeks in (1, 2, 5, 16):
                expected = reference_movements(session, weeks, zone, now)
                got = [
                    (row.week, row.list_size, row.signups, row.confirmations, row.leaves)
                    for row in list_movements(session, weeks, zone, now)
                ]
                assert got == expected, (zone, weeks)
        assert len({row[1] for row in reference_movements(session, 16, settings.zone, now)}) > 5


def test_the_partial_indexes_hold_exactly_the_rows_their_queries_read():
    """A partial index serves a query only if its predicate is the query's: the changes of state
    for the list sizes, the signups asked again for the weeks' signups."""
    assert set(STATE_EVENTS) == {*JOINS, *LEAVES, "suppressed"}
    indexes = {index.name: index for index in SubscriberEvent.__table__.indexes}
    for dialect in ("postgresql", "sqlite"):
        where = str(indexes["ix_subscriberevent_state"].dialect_options[dialect]["where"])
        assert sorted(re.findall(r"'(\w+)'", where)) == sorted(STATE_EVENTS)
        again = str(indexes["ix_subscriberevent_signup_again"].dialect_options[dialect]["where"])
        assert re.findall(r"'([\w ]+)'", again) == [SIGNUP_REQUESTED, ALREADY_ACTIVE]


def test_with_the_pixel_its_hits_are_opens_and_never_clicks(settings, engine):
    """An issue with an open pixel: its hits count as opens (human readers among them), the other
    links' hits as clicks, and the machine reasons add up to the machine clicks only."""
    settings = settings.model_copy(update={"tracking": "clicks+opens"})
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(sample_comparisons(), now, settings.zone), settings.zone)
        add_active(session, [f"p{n}@example.com" for n in range(4)], source="test", key=TEST_KEY.encode())
        issue_id = compose(session, Week.containing(now, settings.zone), settings).issue.id
    asyncio.run(Sender(engine, settings, OutboxProvider(settings.outbox_dir)).send(issue_id))
    later = now + timedelta(hours=3)
    with session_scope(engine) as session:
        readers = list(session.exec(select(Subscriber.id).order_by(Subscriber.id)))
        links = {link.kind: link.id for link in session.exec(select(IssueLink))}
        assert "open" in links
        hits = [
            PendingHit(issue_id, readers[0], links["open"], "open", later, "GET", "browser", False, None),
            PendingHit(issue_id, readers[1], links["open"], "open", later, "GET", "browser", False, None),
            PendingHit(issue_id, readers[2], links["open"], "open", later, "HEAD", "browser", False, None),
            PendingHit(
                issue_id, readers[3], links["comparison"], "comparison", later, "GET", "browser", False, None
            ),
            PendingHit(issue_id, readers[1], links["web"], "web", later, "HEAD", "browser", False, None),
        ]
        store_hits(session, hits, Rules())
    with session_scope(engine) as session:
        report = issue_report(session, issue_id)
        headline = issue_headline(session, issue_id)
    assert (report.opens["human"], report.opens["machine"], report.opens["human_readers"]) == (2, 1, 2)
    assert (report.clicks["human"], report.clicks["machine"], report.clicks["human_readers"]) == (1, 1, 1)
    assert report.clicks["machine_reasons"] == {"method:HEAD": 1}  # the pixel's HEAD is an open's
    assert headline.human_readers == 1
