"""Several senders on one issue: batch leases, take-over of a dead sender's rows, and real
`newsletter worker` processes (one of them SIGKILLed) through the emulator.

These run on whichever database the suite runs on; `make test` runs them on SQLite and on PostgreSQL
(where claims use FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from newsletter import jobs, ledger
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import make_engine, session_scope
from newsletter.delivery import Sender
from newsletter.editions import approve, compose
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, utcnow
from newsletter.providers.outbox import OutboxProvider
from newsletter.samples import dated_into_week
from newsletter.subscriptions import add_active
from tests.commands import run
from tests.conftest import TEST_KEY, at
from tests.databases import clean_env, database_url
from tests.emulator_server import running_emulator
from tests.test_send import dead_sender

NOW = at("2026-11-25T10:00:00Z")
WEEK = Week.parse("2026-W48")


def prepared(session, settings, samples, readers: list[str]) -> int:
    store_comparisons(session, dated_into_week(samples, NOW, settings.zone), settings.zone)
    add_active(session, readers, source="test", key=TEST_KEY.encode())
    issue = compose(session, WEEK, settings).issue
    approve(session, issue, settings)
    return issue.id


def outbox_recipients(settings) -> Counter:
    import email
    from email import policy

    return Counter(
        email.message_from_bytes(path.read_bytes(), policy=policy.default)["To"]
        for path in settings.outbox_dir.glob("*/*.eml")
    )


def test_three_senders_share_one_issue_and_each_reader_gets_it_once(engine, settings, samples):
    readers = [f"r{n}@example.com" for n in range(300)]
    with session_scope(engine) as session:
        issue_id = prepared(session, settings, samples, readers)
        ledger.open_send(session, issue_id)
    settings = settings.model_copy(update={"send_batch_size": 7, "send_concurrency": 2})

    async def three():
        senders = [Sender(engine, settings, OutboxProvider(settings.outbox_dir)) for _ in range(3)]
        return await asyncio.gather(*(sender.work(issue_id) for sender in senders))

    reports = asyncio.run(three())
    assert all(report.sent > 0 for report in reports), [r.sent for r in reports]
    assert sum(report.sent for report in reports) == len(readers)
    got = outbox_recipients(settings)
    assert set(got) == set(readers) and set(got.values()) == {1}
    with Session(engine) as session:
        assert session.get(Issue, issue_id).status == IssueStatus.SENT
        holders = set(session.exec(select(Delivery.claimed_by)).all())
    assert len(holders) == 3, "every sender claimed batches under its own identity"


def test_a_live_senders_rows_are_never_taken_over_and_a_dead_ones_are(engine, settings, samples):
    with session_scope(engine) as session:
        issue_id = prepared(session, settings, samples, [f"r{n}@example.com" for n in range(9)])
        ledger.open_send(session, issue_id)
    live, dead = ledger.sender_identity(), dead_sender()
    mine, _ = ledger.claim(engine, issue_id, 3, live, 120)
    theirs, _ = ledger.claim(engine, issue_id, 3, dead, 120)
    expired, _ = ledger.claim(engine, issue_id, 3, "elsewhere:1:x", 120)
    with session_scope(engine) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.claimed_by == "elsewhere:1:x")
            .values(lease_until=utcnow() - timedelta(seconds=1))
        )

    taken = ledger.take_over(engine, issue_id, "rescuer:2:y", 120)
    ids = {row.delivery_id for rows in taken.values() for row in rows}
    assert ids == {row.delivery_id for row in theirs + expired}
    assert not ids & {row.delivery_id for row in mine}
    assert ledger.take_over(engine, issue_id, "another:3:z", 120) == {}, "taken rows are leased again"
    assert ledger.renew_rows(engine, issue_id, live, 120) == 3


def test_in_worker_mode_the_scheduler_only_marks_the_issue_and_a_worker_sends_it(
    tmp_path, engine, settings, samples
):
    readers = [f"w{n}@example.com" for n in range(20)]
    with session_scope(engine) as session:
        prepared(session, settings, samples, readers)
    workers = settings.model_copy(update={"send_mode": "workers"})
    jobs.set_context(jobs.Context(workers, engine, threading.Event()))
    message = jobs.send_job(now=NOW + timedelta(days=5))
    assert "marked for sending" in message
    with Session(engine) as session:
        assert session.exec(select(Issue.status)).one() == IssueStatus.SENDING
        assert ledger.counts(session, 1) == {DeliveryStatus.QUEUED: len(readers)}
    assert not outbox_recipients(settings), "the scheduler itself sends nothing in worker mode"

    env = {"NEWSLETTER_SECRET_KEY": TEST_KEY, "NEWSLETTER_OUTBOX_DIR": str(settings.outbox_dir)}
    done = run(tmp_path, "worker", "--exit-when-idle", env=env)
    assert done.returncode == 0, done.stderr
    assert "20 sent" in done.stderr
    assert outbox_recipients(settings) == Counter({address: 1 for address in readers})
    with Session(engine) as session:
        assert session.exec(select(Issue.status)).one() == IssueStatus.SENT


def test_four_worker_processes_one_sigkilled_mid_batch_every_reader_exactly_once(tmp_path, samples):
    """20,000 readers through the emulator (Postmark); one of four workers dies mid-batch. Its rows
    are taken over, reconciled with the provider's outbound search, and finished by the others."""
    readers = [f"reader{n:05d}@example.com" for n in range(20_000)]
    env = {
        "NEWSLETTER_SECRET_KEY": TEST_KEY,
        "NEWSLETTER_TIMEZONE": "Europe/Berlin",
        "NEWSLETTER_SEND_BATCH_SIZE": "100",
        "NEWSLETTER_SEND_CONCURRENCY": "2",
        "NEWSLETTER_WORKER_POLL_SECONDS": "0.2",
        "NEWSLETTER_LOG_LEVEL": "INFO",
    }
    url = database_url(tmp_path)
    with running_emulator("--seed", "7") as emulator:
        env |= emulator.provider_env("postmark")
        assert run(tmp_path, "init", "--sample", env=env).returncode == 0
        (tmp_path / "list.csv").write_text("email\n" + "\n".join(readers) + "\n")
        assert run(tmp_path, "subscribers", "import", str(tmp_path / "list.csv"), env=env).returncode == 0
        assert run(tmp_path, "issue", "compose", env=env).returncode == 0
        engine = make_engine(url)
        with session_scope(engine) as session:
            issue_id = session.exec(select(Issue.id)).one()
            ledger.open_send(session, issue_id)  # what the scheduler does in worker mode
        emulator.faults(answer_delay_ms=40)  # a request in flight for a while: the kill lands inside one

        logs = [open(tmp_path / f"worker{n}.log", "w") for n in range(4)]  # noqa: SIM115
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "newsletter", "worker", "--exit-when-idle"],
                cwd=tmp_path,
                env=clean_env(tmp_path) | env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        victim = workers[0]
        deadline = time.monotonic() + 120
        while True:  # kill the first worker while it holds a batch in flight, after some progress
            with Session(engine) as session:
                in_flight = session.exec(
                    select(Delivery.claimed_by).where(Delivery.status == DeliveryStatus.SENDING)
                ).all()
            sent = sum(emulator.counts().values())
            if sent > 2_000 and any(f":{victim.pid}:" in (holder or "") for holder in in_flight):
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                break
            assert victim.poll() is None and time.monotonic() < deadline, "no moment to kill the worker"
            time.sleep(0.02)
        with Session(engine) as session:
            orphaned = session.exec(
                select(Delivery.id).where(
                    Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_by.like(f"%:{victim.pid}:%")
                )
            ).all()
        assert orphaned, "the killed worker left rows in flight"
        emulator.faults()
        for worker in workers[1:]:
            assert worker.wait(timeout=600) == 0
        for log in logs:
            log.close()

        per_address = Counter(emulator.counts())
        assert set(per_address) == set(readers), f"{len(set(readers) - set(per_address))} readers missed"
        twice = [address for address, count in per_address.items() if count > 1]
        assert not twice, f"{len(twice)} readers got it twice, e.g. {twice[:3]}"
        with Session(engine) as session:
            assert ledger.counts(session, issue_id) == {DeliveryStatus.SENT: len(readers)}
            assert session.get(Issue, issue_id).status == IssueStatus.SENT
            taken_over = session.exec(select(Delivery.claimed_by).where(Delivery.id.in_(orphaned))).all()
        assert all(f":{victim.pid}:" not in holder for holder in taken_over), "another worker finished them"
        engine.dispose()


def test_rows_put_back_below_a_senders_cursor_are_still_claimed(engine, settings, samples):
    with session_scope(engine) as session:
        issue_id = prepared(session, settings, samples, [f"r{n}@example.com" for n in range(10)])
        ledger.open_send(session, issue_id)
    me, cursor = ledger.sender_identity(), ledger.ClaimCursor()
    first, _ = ledger.claim(engine, issue_id, 4, me, 120, cursor)
    assert cursor.after == first[-1].delivery_id
    ledger.mark(engine, [row.delivery_id for row in first], DeliveryStatus.QUEUED, None)  # put back
    later = []
    while batch := ledger.claim(engine, issue_id, 4, me, 120, cursor)[0]:
        later += batch
    assert {row.delivery_id for row in first} <= {row.delivery_id for row in later}
    assert len(later) == 10
