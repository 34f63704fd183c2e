"""The store's side of tracking: hits in batches with their verdicts, folding past retention (the
report's figures unchanged), and provider events that say a machine did it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlmodel import select

from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose
from newsletter.events.base import Verified
from newsletter.events.intake import store_events
from newsletter.events.mailgun import MailgunWebhook
from newsletter.events.postmark import PostmarkWebhook
from newsletter.events.sendgrid import SendGridWebhook
from newsletter.models import IssueLink, LinkCount, LinkHit, ProviderEvent, Subscriber
from newsletter.providers import OutboxProvider
from newsletter.reports import issue_report
from newsletter.samples import dated_into_week, sample_comparisons
from newsletter.subscriptions import add_active
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import PendingHit, store_hits
from newsletter.tracking.retention import fold_old_hits
from tests.conftest import TEST_KEY


@pytest.fixture
def sent(settings, engine):
    """An issue sent to three readers: (issue id, reader ids, {kind: link id})."""
    now = datetime.now(UTC)
    emails = [f"r{n}@example.com" for n in range(3)]
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(sample_comparisons(), now, settings.zone), settings.zone)
        add_active(session, emails, source="test", key=TEST_KEY.encode())
        issue_id = compose(session, Week.containing(now, settings.zone), settings).issue.id
    asyncio.run(Sender(engine, settings, OutboxProvider(settings.outbox_dir)).send(issue_id))
    with session_scope(engine) as session:
        readers = list(session.exec(select(Subscriber.id).order_by(Subscriber.id)))
        links = {link.kind: link.id for link in session.exec(select(IssueLink))}
    return issue_id, readers, links


def hit(issue_id, reader, link_id, kind, at, method="GET", agent="browser") -> PendingHit:
    return PendingHit(issue_id, reader, link_id, kind, at, method, agent, False, None)


def test_a_later_decoy_hit_turns_the_earlier_hits_of_its_burst_into_machines(engine, sent):
    issue_id, (reader, *_), links = sent
    at = datetime.now(UTC) + timedelta(hours=2)
    with session_scope(engine) as session:
        store_hits(session, [hit(issue_id, reader, links["comparison"], "comparison", at)], Rules())
    with session_scope(engine) as session:
        assert session.exec(select(LinkHit.machine)).all() == [False]
        store_hits(
            session, [hit(issue_id, reader, links["decoy"], "decoy", at + timedelta(seconds=3))], Rules()
        )
    with session_scope(engine) as session:
        assert session.exec(select(LinkHit.reason).order_by(LinkHit.id)).all() == ["decoy-burst", "decoy"]


def test_old_hits_fold_into_counts_and_the_report_stays_the_same(settings, engine, sent):
    issue_id, readers, links = sent
    at = datetime.now(UTC) + timedelta(hours=2)
    batch = [
        hit(issue_id, readers[0], links["comparison"], "comparison", at),
        hit(issue_id, readers[0], links["web"], "web", at + timedelta(seconds=30)),
        hit(issue_id, readers[1], links["comparison"], "comparison", at + timedelta(seconds=5)),
        hit(issue_id, readers[2], links["site"], "site", at, method="HEAD"),
        hit(issue_id, readers[2], links["decoy"], "decoy", at),
    ]
    with session_scope(engine) as session:
        store_hits(session, batch, Rules())
    with session_scope(engine) as session:
        before = issue_report(session, issue_id).as_json()
    assert (before["clicks"]["human"], before["clicks"]["machine"], before["clicks"]["human_readers"]) == (
        3,
        2,
        2,
    )

    assert fold_old_hits(engine, settings, now=at + timedelta(days=1)).hits == 0  # nothing old yet
    folded = fold_old_hits(engine, settings, now=at + timedelta(days=settings.hit_retention_days, minutes=5))
    assert (folded.issues, folded.hits) == (1, 5)
    with session_scope(engine) as session:
        assert session.exec(select(LinkHit)).all() == []
        counts = session.exec(select(LinkCount)).all()
        after = issue_report(session, issue_id).as_json()
    folded_links = {row.link_id for row in counts}
    assert folded_links == {links["comparison"], links["web"], links["site"], links["decoy"]}
    assert after["clicks"].pop("machine_reasons") == {"folded (reason not kept)": 2}
    assert before["clicks"].pop("machine_reasons") == {"method:HEAD": 1, "decoy": 1}
    assert after == before


@pytest.mark.parametrize(
    ("webhook", "item", "machine"),
    [
        (
            SendGridWebhook(),
            {"event": "open", "sg_event_id": "e1", "timestamp": 1, "sg_machine_open": True},
            True,
        ),
        (
            SendGridWebhook(),
            {"event": "open", "sg_event_id": "e2", "timestamp": 1, "sg_machine_open": False},
            False,
        ),
        (SendGridWebhook(), {"event": "open", "sg_event_id": "e3", "timestamp": 1}, None),
        (SendGridWebhook(), {"event": "open", "sg_event_id": "e4", "sg_machine_open": "yes"}, None),
        (MailgunWebhook(), {"event": "opened", "id": "m1", "client-info": {"bot": "apple"}}, True),
        (MailgunWebhook(), {"event": "clicked", "id": "m2", "client-info": {"bot": ""}}, False),
        (MailgunWebhook(), {"event": "delivered", "id": "m3", "client-info": {"bot": "apple"}}, None),
        (
            PostmarkWebhook(),
            {"RecordType": "Open", "MessageID": "p1", "ReceivedAt": "x", "MachineOpen": True},
            True,
        ),
        (PostmarkWebhook(), {"RecordType": "Open", "MessageID": "p2", "ReceivedAt": "x"}, None),
    ],
)
def test_providers_that_say_a_machine_opened_are_believed(session, webhook, item, machine):
    event = webhook.normalise(item, Verified([item], "token"))
    assert event.machine is machine
    store_events(session, [event])
    assert session.exec(select(ProviderEvent.machine)).one() is machine


def test_a_store_that_cannot_be_written_is_one_log_line_and_the_hits_stay_queued(tmp_path, caplog):
    """The store is down (here: its directory is gone): an expected failure, logged in one line
    without a traceback; the batch goes back to the queue for the next try."""
    import logging

    from sqlalchemy.exc import OperationalError

    from newsletter.db import make_engine
    from newsletter.tracking.recorder import HitRecorder

    engine = make_engine(f"sqlite:///{tmp_path / 'gone' / 'store.db'}")
    recorder = HitRecorder(engine, Rules())
    hit = PendingHit(1, 1, 1, "comparison", datetime.now(UTC), "GET", "browser", False, None)
    recorder.record(hit)
    with caplog.at_level(logging.ERROR, logger="newsletter"), pytest.raises(OperationalError):
        asyncio.run(recorder.flush())
    engine.dispose()
    (record,) = [r for r in caplog.records if "could not store 1 hits" in r.getMessage()]
    assert record.exc_info is None and "unable to open database file" in record.getMessage()
    assert list(recorder.pending) == [hit]


def test_stats_say_not_tracked_for_an_issue_sent_with_tracking_off(tmp_path):
    """No clicks were counted, so there is no rate: `not tracked` (None in JSON), never 0.0%."""
    import json

    from tests.commands import run

    env = {"NEWSLETTER_SECRET_KEY": TEST_KEY, "NEWSLETTER_TRACKING": "off"}
    for args in (
        ("init", "--sample"),
        ("subscribers", "add", "ada@example.com", "grace@example.com"),
        ("issue", "compose"),
        ("issue", "send"),
    ):
        result = run(tmp_path, *args, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
    this_week = json.loads(run(tmp_path, "stats", "--weeks", "1", "--json", env=env).stdout)["weeks"][-1]
    assert this_week["recipients"] == 2 and this_week["tracked"] is False
    assert this_week["human_click_rate"] is None
    table = run(tmp_path, "stats", "--weeks", "1", env=env).stdout
    assert "not tracked" in table and "0.0%" not in table
    csv_rows = run(tmp_path, "stats", "--weeks", "1", "--csv", env=env).stdout.splitlines()
    header, row = csv_rows[0].split(","), csv_rows[-1].split(",")
    assert row[header.index("tracked")] == "False" and row[header.index("human_click_rate")] == ""


def _figures(engine, issue_id) -> dict:
    """The report without the machine reasons (folded ones are kept as a count, not by rule)."""
    with session_scope(engine) as session:
        report = issue_report(session, issue_id).as_json()
    report["clicks"].pop("machine_reasons")
    return report


def test_unique_human_readers_stay_exact_across_folds_at_every_cut(settings, engine, sent):
    """One reader's two human clicks four seconds apart with a fold between them, folds a day
    apart, a reader clicking one link twice across folds: the report (readers per link and per
    issue included, and so the stats' click rate) is the same before and after every fold."""
    issue_id, readers, links = sent
    at = datetime.now(UTC) + timedelta(hours=2)
    batch = [
        hit(issue_id, readers[0], links["comparison"], "comparison", at),
        hit(issue_id, readers[0], links["web"], "web", at + timedelta(seconds=4)),
        hit(issue_id, readers[0], links["comparison"], "comparison", at + timedelta(days=1)),
        hit(issue_id, readers[1], links["comparison"], "comparison", at + timedelta(seconds=30)),
        hit(issue_id, readers[1], links["comparison"], "comparison", at + timedelta(days=2)),
        hit(issue_id, readers[2], links["site"], "site", at + timedelta(hours=5), method="HEAD"),
        hit(issue_id, readers[2], links["site"], "site", at + timedelta(days=3)),
    ]
    with session_scope(engine) as session:
        store_hits(session, batch, Rules())
    before = _figures(engine, issue_id)
    assert before["clicks"]["human_readers"] == 3 and before["clicks"]["human"] == 6
    by_url = {link["kind"]: link["human_readers"] for link in before["links"]}
    assert by_url["comparison"] == 2 and by_url["web"] == 1 and by_url["site"] == 1
    times = sorted({h.at for h in batch})
    cuts = [a + (b - a) / 2 for a, b in pairwise(times)] + [times[-1] + timedelta(seconds=1)]
    retention = timedelta(days=settings.hit_retention_days)
    for cut in cuts:
        fold_old_hits(engine, settings, now=cut + retention)
        assert _figures(engine, issue_id) == before, f"after the fold at {cut - at}"
    with session_scope(engine) as session:
        assert session.exec(select(LinkHit)).all() == []
    from newsletter.weekly import weekly_stats

    with session_scope(engine) as session:
        (week,) = [w for w in weekly_stats(session, 1, settings.zone) if w.issue]
    assert week.human_click_rate == round(3 / len(readers), 4)


def test_an_erased_reader_leaves_no_folded_click_and_the_export_has_them(settings, engine, sent):
    from newsletter.models import FoldedClick
    from newsletter.subscriptions import erase, export_data

    issue_id, readers, links = sent
    at = datetime.now(UTC) + timedelta(hours=2)
    with session_scope(engine) as session:
        store_hits(session, [hit(issue_id, readers[0], links["comparison"], "comparison", at)], Rules())
    fold_old_hits(engine, settings, now=at + timedelta(days=settings.hit_retention_days, minutes=1))
    with session_scope(engine) as session:
        reader = session.get(Subscriber, readers[0])
        assert [c["kind"] for c in export_data(session, reader)["folded_clicks"]] == ["comparison"]
        erase(session, reader)
    with session_scope(engine) as session:
        assert session.exec(select(FoldedClick)).all() == []
