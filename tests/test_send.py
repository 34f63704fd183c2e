"""Sending to the outbox: real .eml files, parsed back, and a ledger that never sends anyone twice."""

from __future__ import annotations

import asyncio
import email
import socket
import subprocess
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, func, select

from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender, SendRefused
from newsletter.editions import EditionError, compose, set_overrides
from newsletter.ledger import counts as ledger_counts
from newsletter.ledger import enqueue
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, Subscriber, SubscriberStatus
from newsletter.providers import OutboxProvider
from newsletter.samples import dated_into_week
from newsletter.subscriptions import add_active
from tests.conftest import TEST_KEY

WEEK = Week.parse("2026-W48")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
READERS = [f"reader{n}@example.com" for n in range(12)]


@pytest.fixture
def issue_id(engine, settings, samples) -> int:
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples, NOW, settings.zone), settings.zone)
        add_active(session, READERS, source="test", key=TEST_KEY.encode())
        return compose(session, WEEK, settings).issue.id


def send(engine, settings, issue_id, provider=None, identity=None):
    sender = Sender(engine, settings, provider or OutboxProvider(settings.outbox_dir), identity=identity)
    return asyncio.run(sender.send(issue_id))


def dead_sender() -> str:
    """The identity of a sender process on this machine that has exited (as after a SIGKILL)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:dead"


def outbox_files(settings) -> list[Path]:
    return sorted((settings.outbox_dir / "2026-w48").glob("*.eml"))


def parse(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def test_each_active_reader_gets_one_real_multipart_message(engine, settings, issue_id):
    report = send(engine, settings, issue_id)
    files = outbox_files(settings)
    assert report.sent == len(READERS) == len(files)

    recipients = set()
    for path in files:
        message = parse(path)
        assert message.get_content_type() == "multipart/alternative"
        text_part, html_part = message.iter_parts()
        assert text_part.get_content_type() == "text/plain"
        assert html_part.get_content_type() == "text/html"
        assert "Claude Haiku Open Weights" in text_part.get_content()
        assert "<!doctype html>" in html_part.get_content().lower()
        assert message["From"] == settings.from_address
        assert message["Subject"].startswith("Claude Haiku Open Weights vs Gemini 2.5 Flash Lite")
        assert message["Date"] and message["Message-ID"].endswith("@verdicts.example.com>")
        unsubscribe = message["List-Unsubscribe"]
        assert unsubscribe.startswith("<https://verdicts.example.com/unsubscribe/") and unsubscribe.endswith(
            ">"
        )
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert unsubscribe.strip("<>") in html_part.get_content()
        assert message["To"] in html_part.get_content()
        recipients.add(message["To"])
    assert recipients == set(READERS)
    with Session(engine) as session:
        assert session.get(Issue, issue_id).status == IssueStatus.SENT
        assert ledger_counts(session, issue_id) == {DeliveryStatus.SENT: len(READERS)}


def test_eml_lines_are_crlf_and_short_enough_for_smtp(engine, settings, issue_id):
    send(engine, settings, issue_id)
    raw = outbox_files(settings)[0].read_bytes()
    lines = raw.split(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in lines) <= 998


def test_running_send_twice_sends_nobody_twice(engine, settings, issue_id):
    first = send(engine, settings, issue_id)
    stamps = {p: p.stat().st_mtime_ns for p in outbox_files(settings)}
    second = send(engine, settings, issue_id)
    assert first.sent == len(READERS)
    assert second.sent == 0 and second.previously_sent == len(READERS)
    assert {p: p.stat().st_mtime_ns for p in outbox_files(settings)} == stamps
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Delivery)).one() == len(READERS)


def test_a_reader_who_joins_after_a_finished_send_is_not_sent_the_old_issue(engine, settings, issue_id):
    send(engine, settings, issue_id)
    with session_scope(engine) as session:
        add_active(session, ["latecomer@example.com"], source="test", key=TEST_KEY.encode())
    assert send(engine, settings, issue_id).sent == 0
    assert len(outbox_files(settings)) == len(READERS)


def test_ledger_rows_are_unique_per_issue_and_reader(engine, issue_id):
    with session_scope(engine) as session:
        assert enqueue(session, issue_id) == len(READERS)
        assert enqueue(session, issue_id) == 0


class DiesMidBatch(OutboxProvider):
    """Writes the first `survivors` messages of its first batch, then the process "dies"."""

    max_batch = 4

    def __init__(self, directory, survivors: int):
        super().__init__(directory)
        self.survivors = survivors

    async def send_batch(self, messages):
        for message in messages[: self.survivors]:
            self.write(message)
        raise KeyboardInterrupt("killed mid-request")


def test_a_crash_mid_send_is_reconciled_before_anything_is_resent(engine, settings, issue_id):
    """Rows left `sending` whose file exists were sent; the others are sent now, once."""
    with pytest.raises(KeyboardInterrupt):
        send(engine, settings, issue_id, DiesMidBatch(settings.outbox_dir, survivors=2), dead_sender())
    with Session(engine) as session:
        assert ledger_counts(session, issue_id) == {
            DeliveryStatus.SENDING: 4,
            DeliveryStatus.QUEUED: len(READERS) - 4,
        }
    assert len(outbox_files(settings)) == 2

    report = send(engine, settings, issue_id)
    assert report.reconciled == 2
    assert report.sent == len(READERS) - 2
    assert sorted(parse(p)["To"] for p in outbox_files(settings)) == sorted(READERS)
    with Session(engine) as session:
        assert ledger_counts(session, issue_id) == {DeliveryStatus.SENT: len(READERS)}


def test_a_reader_who_left_after_the_ledger_was_written_is_not_sent(engine, settings, issue_id):
    with session_scope(engine) as session:
        enqueue(session, issue_id)
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == READERS[0])
            .values(status=SubscriberStatus.UNSUBSCRIBED)
        )
    report = send(engine, settings, issue_id)
    assert report.sent == len(READERS) - 1
    assert report.suppressed == {"reader no longer active": 1}
    assert READERS[0] not in {parse(p)["To"] for p in outbox_files(settings)}
    with Session(engine) as session:
        assert ledger_counts(session, issue_id)[DeliveryStatus.SUPPRESSED] == 1


def test_only_active_readers_are_queued(engine, settings, issue_id):
    with session_scope(engine) as session:
        session.add(Subscriber(email="pending@example.com", status=SubscriberStatus.PENDING))
        session.add(Subscriber(email="gone@example.com", status=SubscriberStatus.UNSUBSCRIBED))
    send(engine, settings, issue_id)
    assert {parse(p)["To"] for p in outbox_files(settings)} == set(READERS)


def test_an_outbox_that_cannot_be_written_refuses_the_send_and_changes_nothing(engine, settings, issue_id):
    """A disk error is fatal, not a failure per reader: here it is found before the send opens (more
    in tests/test_send_refusals.py)."""
    blocked = settings.outbox_dir / "2026-w48"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the directory should be")
    with pytest.raises(SendRefused, match=r"cannot write to .*2026-w48: File exists"):
        send(engine, settings, issue_id)
    with Session(engine) as session:
        assert session.get(Issue, issue_id).status == IssueStatus.DRAFT
        assert ledger_counts(session, issue_id) == {}


def test_a_cancelled_issue_is_never_sent(engine, settings, issue_id):
    with session_scope(engine) as session:
        session.get(Issue, issue_id).status = IssueStatus.CANCELLED
    with pytest.raises(EditionError, match="cancelled"):
        send(engine, settings, issue_id)
    assert outbox_files(settings) == []


def test_editor_subject_reaches_the_message_and_line_breaks_never_do(engine, settings, issue_id):
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        with pytest.raises(EditionError, match="single line"):
            set_overrides(session, issue, subject="Hello\r\nBcc: everyone@example.com")
        set_overrides(
            session, issue, subject="Three verdicts you should read", preheader="Haiku splits the panel"
        )
    send(engine, settings, issue_id)
    message = parse(outbox_files(settings)[0])
    assert message["Subject"] == "Three verdicts you should read"
    assert message["Bcc"] is None
    assert "Haiku splits the panel" in message.get_body(("html",)).get_content()


def test_paused_readers_are_not_queued_and_a_pause_after_queueing_suppresses(engine, settings, issue_id):
    from datetime import timedelta

    from newsletter.models import utcnow

    with session_scope(engine) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == READERS[0])
            .values(paused_until=utcnow() + timedelta(weeks=2))
        )
        enqueue(session, issue_id)
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == READERS[1])
            .values(paused_until=utcnow() + timedelta(weeks=1))
        )
    report = send(engine, settings, issue_id)
    recipients = {parse(p)["To"] for p in outbox_files(settings)}
    assert READERS[0] not in recipients and READERS[1] not in recipients
    assert report.sent == len(READERS) - 2
    with Session(engine) as session:
        rows = session.exec(select(Delivery).where(Delivery.last_error == "reader paused")).all()
        assert len(rows) == 1


def test_readers_get_the_comparisons_of_the_categories_they_chose(engine, settings, issue_id):
    import json

    with session_scope(engine) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == READERS[0])
            .values(categories=json.dumps(["Voice & Audio"]))
        )
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == READERS[1])
            .values(categories=json.dumps(["Astrology"]))
        )
    report = send(engine, settings, issue_id)
    by_reader = {parse(p)["To"]: parse(p) for p in outbox_files(settings)}
    voice = by_reader[READERS[0]].get_body(("plain",)).get_content()
    assert "ElevenLabs v3" in voice and "GPT-4o mini TTS" in voice
    assert "Claude Haiku Open Weights" not in voice
    assert by_reader[READERS[0]]["Subject"].startswith("ElevenLabs v3 vs GPT-4o mini TTS")
    everyone_else = by_reader[READERS[2]].get_body(("plain",)).get_content()
    assert "Claude Haiku Open Weights" in everyone_else
    assert READERS[1] not in by_reader, "a week with nothing in their categories sends them nothing"
    assert report.suppressed_total == 1 and report.sent == len(READERS) - 1
