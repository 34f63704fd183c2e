"""Rollups of what only ever arrives (hits, provider events) grow from the highest id they counted:
after any mix of new hits and events (people and machines, repeat clicks, readers whose earlier
clicks were folded, the pixel), the report read through them is what counting afresh gives, the
rollups stay kept, a view that keeps the grown figures moves their `through_id`, and a row that
arrives at or below it (an id given by hand) drops them. On SQLite, or on PostgreSQL with
NEWSLETTER_TEST_DATABASE."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, select

from newsletter import rollups
from newsletter.db import session_scope
from newsletter.models import Delivery, FoldedClick, IssueLink, IssueRollup, LinkHit, ProviderEvent
from tests.test_reports import busy  # noqa: F401  (a fixture)
from tests.test_rollups import PARTS, counted, kept, read

GROWING = {"hits", "readers", "events"}
REASONS = ("decoy link", "too fast", "known scanner")


def throughs(engine, issue_id: int) -> dict[str, int | None]:
    with Session(engine) as session:
        rows = session.exec(select(IssueRollup).where(IssueRollup.issue_id == issue_id))
        return {row.part: row.through_id for row in rows}


def newest_hit(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.max(LinkHit.id))).one()


def with_pixel(engine, issue_id: int) -> list[int]:
    """The issue's link ids after adding a pixel (the fixture's issue went out without one)."""
    with session_scope(engine) as session:
        session.add(IssueLink(issue_id=issue_id, code="pixel0000", kind="open", url="pixel", label="pixel"))
    with Session(engine) as session:
        return list(session.exec(select(IssueLink.id).where(IssueLink.issue_id == issue_id)))


def arrivals(session: Session, rng: random.Random, issue_id: int, readers, links, deliveries, round_: int):
    at = datetime.now(UTC) + timedelta(hours=6 + round_)
    for _ in range(rng.randint(1, 30)):
        machine = rng.random() < 0.3
        session.add(
            LinkHit(
                issue_id=issue_id,
                subscriber_id=rng.choice(readers),
                link_id=rng.choice(links),
                at=at,
                method="GET",
                agent="browser",
                machine=machine,
                reason=rng.choice(REASONS) if machine else "",
            )
        )
    for n in range(rng.randint(0, 6)):
        reader = rng.choice(readers)
        session.add(
            ProviderEvent(
                provider="postmark",
                event_key=f"round{round_}-{n}",
                kind=rng.choice(("delivered", "bounced", "soft_bounced", "complained", "opened")),
                delivery_id=deliveries[reader],
                subscriber_id=reader,
                issue_id=issue_id,
                machine=rng.choice((None, True, False)),
                occurred_at=at,
            )
        )


def test_hits_and_events_after_a_rollup_grow_it_to_what_a_recount_finds(engine, busy):  # noqa: F811
    issue_id, readers = busy
    links = with_pixel(engine, issue_id)
    with session_scope(engine) as session:  # clicks retention folded away: those readers count once
        session.add(FoldedClick(issue_id=issue_id, subscriber_id=readers[2], link_id=links[0]))
        session.add(FoldedClick(issue_id=issue_id, subscriber_id=readers[3], link_id=links[-1]))
    with Session(engine) as session:
        deliveries = dict(session.exec(select(Delivery.subscriber_id, Delivery.id)).all())
    rng = random.Random(2026)
    read(engine, issue_id)
    assert kept(engine, issue_id) == PARTS
    for round_ in range(8):
        before = throughs(engine, issue_id)
        assert all(before[part] is not None for part in GROWING) and before["ledger"] is None
        with session_scope(engine) as session:
            arrivals(session, rng, issue_id, readers, links, deliveries, round_)
        assert kept(engine, issue_id) == PARTS, "rows above through_id leave every rollup standing"
        grown = read(engine, issue_id)
        assert throughs(engine, issue_id) == before, "a view under REKEEP_AFTER new rows keeps nothing"
        assert grown == counted(engine, issue_id), f"round {round_}"
        read(engine, issue_id)  # kept afresh for the next round


def test_a_view_after_many_new_rows_keeps_the_grown_figures(engine, busy, monkeypatch):  # noqa: F811
    issue_id, readers = busy
    links = with_pixel(engine, issue_id)
    with Session(engine) as session:
        deliveries = dict(session.exec(select(Delivery.subscriber_id, Delivery.id)).all())
    read(engine, issue_id)
    first = throughs(engine, issue_id)
    monkeypatch.setattr(rollups, "REKEEP_AFTER", 0)
    with session_scope(engine) as session:
        arrivals(session, random.Random(5), issue_id, readers, links, deliveries, 0)
    grown = read(engine, issue_id)
    now = throughs(engine, issue_id)
    assert now["hits"] == now["readers"] == newest_hit(engine) > first["hits"]
    assert now["events"] >= first["events"]
    assert read(engine, issue_id) == grown, "read from the kept figures alone now"
    assert throughs(engine, issue_id) == now
    assert grown == counted(engine, issue_id)


def test_a_hit_given_an_id_at_or_below_through_drops_the_rollups(engine, busy):  # noqa: F811
    """Ids handed out after a count are always above it; an id given by hand (or reused) is not,
    and the trigger drops what could have missed it."""
    issue_id, readers = busy
    links = with_pixel(engine, issue_id)
    gap = newest_hit(engine) + 10
    hit = {"issue_id": issue_id, "link_id": links[0], "method": "GET", "agent": "browser"}
    with session_scope(engine) as session:
        session.add(LinkHit(id=gap, subscriber_id=readers[0], at=datetime.now(UTC), **hit))
    read(engine, issue_id)
    assert throughs(engine, issue_id)["hits"] == gap
    with session_scope(engine) as session:
        session.add(LinkHit(id=gap - 5, subscriber_id=readers[7], at=datetime.now(UTC), **hit))
    assert not {"hits", "readers"} & kept(engine, issue_id)
    assert "events" in kept(engine, issue_id), "only the parts that count hits"
    assert read(engine, issue_id) == counted(engine, issue_id)
