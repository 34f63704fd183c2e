"""Sends that cannot start change nothing; sends that stop say so truthfully and can be finished or
cancelled; a disk that cannot be written is fatal, never 995 failures and a `sent` issue.

Disk errors are real ones: a file where the issue's directory belongs (ENOTDIR/EEXIST even for root),
a path under /proc (nothing can be made there, root included), and a tiny tmpfs that fills up part-way
through a send (where this machine lets the test mount one).
"""

from __future__ import annotations

import asyncio
import email
import re
import shutil
import socket
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from newsletter import ledger
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import SendAborted, Sender, SendRefused, SendReport
from newsletter.editions import EditionError, cancel, compose
from newsletter.models import Delivery, DeliveryStatus, Issue, IssueStatus, utcnow
from newsletter.personalise import IssueMailer
from newsletter.providers import OutboxProvider
from newsletter.providers.base import Failure, ProviderError
from newsletter.render import Renderer
from newsletter.samples import dated_into_week, issue_from
from newsletter.subscriptions import add_active
from tests.commands import mount_tmpfs, run
from tests.conftest import TEST_KEY

READERS = [f"reader{n:02}@example.com" for n in range(20)]


def this_week(settings) -> Week:
    return Week.containing(datetime.now(UTC), settings.zone)


@pytest.fixture
def issue_id(engine, settings, samples) -> int:
    """This week's draft of three comparisons, for twenty readers."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples, now, settings.zone), settings.zone)
        add_active(session, READERS, source="test", key=TEST_KEY.encode())
        return compose(session, this_week(settings), settings).issue.id


@pytest.fixture
def oversized_id(engine, settings, samples) -> int:
    """This week's draft of all seven samples: over Gmail's clipping size."""
    now = datetime.now(UTC)
    wide = settings.model_copy(update={"issue_size": 7})
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples, now, settings.zone), settings.zone)
        add_active(session, READERS[:2], source="test", key=TEST_KEY.encode())
        return compose(session, this_week(settings), wide).issue.id


def env_for(settings, **extra: str) -> dict[str, str]:
    return {"NEWSLETTER_SECRET_KEY": settings.secret_key, **extra}


def state(engine, issue_id) -> tuple[str, dict[str, int]]:
    with Session(engine) as session:
        return session.get(Issue, issue_id).status, ledger.counts(session, issue_id)


def recipients(directory: Path) -> Counter:
    return Counter(
        email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]
        for p in directory.rglob("*.eml")
        if p.is_file()
    )


def leftovers(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".probe")]


def send(engine, settings, issue_id, provider=None, progress=None):
    sender = Sender(engine, settings, provider or OutboxProvider(settings.outbox_dir))
    return asyncio.run(sender.send(issue_id, on_progress=progress))


def dead_sender() -> str:
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}:dead"


# --- 1. a send that cannot start leaves the issue as it was -------------------------------------------


def test_a_forced_send_over_gmails_size_is_refused_before_anything_changes(
    tmp_path, settings, engine, oversized_id
):
    result = run(tmp_path, "issue", "send", "--force", env=env_for(settings, NEWSLETTER_ISSUE_SIZE="7"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "size" in result.stdout and "--force does not override the size check" in result.stderr
    assert "Traceback" not in result.stderr
    assert state(engine, oversized_id) == (IssueStatus.DRAFT, {})
    assert not list((tmp_path / "outbox").rglob("*.eml"))

    # The issue is untouched, so the editor can still edit and cancel it.
    edited = run(tmp_path, "issue", "edit", "--subject", "Seven verdicts", env=env_for(settings))
    assert edited.returncode == 0, edited.stderr
    cancelled = run(tmp_path, "issue", "cancel", env=env_for(settings))
    assert cancelled.returncode == 0, cancelled.stderr
    assert state(engine, oversized_id)[0] == IssueStatus.CANCELLED


def test_the_sender_itself_refuses_an_oversized_issue_before_writing_the_ledger(
    engine, settings, oversized_id
):
    with pytest.raises(SendRefused, match="Gmail clips"):
        send(engine, settings, oversized_id)
    assert state(engine, oversized_id) == (IssueStatus.DRAFT, {})
    with Session(engine) as session:
        assert session.get(Issue, oversized_id).sender is None


def test_a_variant_for_some_readers_that_does_not_render_refuses_the_whole_send_first(
    engine, settings, issue_id, monkeypatch
):
    """Readers with chosen categories get their own render; it is checked before the send opens."""
    with session_scope(engine) as session:
        session.execute(
            update(ledger.Subscriber)
            .where(ledger.Subscriber.email == READERS[0])
            .values(categories='["Voice & Audio"]')
        )
    from newsletter.render import Renderer, RenderError

    real = Renderer.render_issue

    def fails_for_voice(self, view, **kwargs):
        if view.comparisons[0].category == "Voice & Audio" and len(view.comparisons) == 1:
            raise RenderError("the voice variant is broken")
        return real(self, view, **kwargs)

    monkeypatch.setattr(Renderer, "render_issue", fails_for_voice)
    with pytest.raises(SendRefused, match="the voice variant is broken"):
        send(engine, settings, issue_id)
    assert state(engine, issue_id) == (IssueStatus.DRAFT, {})


@pytest.mark.parametrize("status", [IssueStatus.DRAFT, IssueStatus.APPROVED])
def test_a_failure_after_the_ledger_opened_but_before_any_message_left_is_undone(
    engine, settings, issue_id, monkeypatch, status
):
    with session_scope(engine) as session:
        session.get(Issue, issue_id).status = status

    def broken(self, **kwargs):
        raise ValueError("the message could not be built")

    monkeypatch.setattr(IssueMailer, "message", broken)
    with pytest.raises(ValueError, match="could not be built"):
        send(engine, settings, issue_id)
    assert state(engine, issue_id) == (status, {})
    with Session(engine) as session:
        issue = session.get(Issue, issue_id)
        assert issue.sender is None and issue.send_started_at is None and issue.approved_at is None

    monkeypatch.undo()
    report = send(engine, settings, issue_id)
    assert report.sent == len(READERS)
    assert recipients(settings.outbox_dir) == Counter(READERS)


def test_an_undone_rerun_keeps_what_an_earlier_run_sent(engine, settings, issue_id, monkeypatch):
    """A send of an issue already `sending` that fails before handing anything over puts the rows it
    claimed back in the queue and leaves the rest as they were."""
    first = FatalAfter(settings.outbox_dir, batches=1)
    with pytest.raises(SendAborted):
        send(
            engine, settings.model_copy(update={"send_batch_size": 5, "send_concurrency": 1}), issue_id, first
        )
    before = state(engine, issue_id)
    assert before == (IssueStatus.SENDING, {DeliveryStatus.SENT: 5, DeliveryStatus.QUEUED: 15})

    monkeypatch.setattr(IssueMailer, "message", lambda self, **kwargs: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        send(engine, settings, issue_id)
    assert state(engine, issue_id) == before
    monkeypatch.undo()
    send(engine, settings, issue_id)
    assert recipients(settings.outbox_dir) == Counter(READERS)


# --- 2. a disk that cannot be written is fatal ----------------------------------------------------------


class FatalAfter(OutboxProvider):
    """Writes `batches` batches, then the provider refuses everything (as a 401 would)."""

    def __init__(self, directory, batches: int):
        super().__init__(directory)
        self.left = batches

    async def send_batch(self, messages):
        if self.left <= 0:
            raise ProviderError("emulated: refused credentials (401)", failure=Failure.FATAL)
        self.left -= 1
        return await super().send_batch(messages)


class DiskBreaksAfter(OutboxProvider):
    """A real outbox whose issue directory turns into a file after `batches` batches: every write
    after that fails with the disk's own error (ENOTDIR/EEXIST), as a disk gone bad would."""

    def __init__(self, directory, batches: int):
        super().__init__(directory)
        self.left = batches

    async def send_batch(self, messages):
        if self.left == 0:
            tag_dir = self.path_for(messages[0]).parent
            shutil.move(tag_dir, tag_dir.with_name("moved-away"))
            tag_dir.write_text("not a directory any more")
        self.left -= 1
        return await super().send_batch(messages)


def test_a_disk_that_breaks_mid_send_stops_it_keeps_the_queue_and_a_rerun_finishes(
    engine, settings, issue_id
):
    small = settings.model_copy(update={"send_batch_size": 4, "send_concurrency": 1})
    seen: list[tuple[int, int]] = []
    with pytest.raises(
        SendAborted, match=r"outbox: cannot write to \S+: (Not a directory|File exists)"
    ) as stop:
        send(
            engine,
            small,
            issue_id,
            DiskBreaksAfter(settings.outbox_dir, batches=2),
            lambda done, total: seen.append((done, total)),
        )
    status, counts = state(engine, issue_id)
    assert status == IssueStatus.SENDING
    assert counts == {DeliveryStatus.SENT: 8, DeliveryStatus.QUEUED: 12}, "no reader is marked failed"
    assert stop.value.report.sent == 8
    assert max(done for done, _ in seen) == 8, "progress never claims what did not happen"
    assert all(total == len(READERS) for _, total in seen)
    assert not leftovers(settings.outbox_dir)

    # Fix the disk, run again: everyone exactly once.
    tag_dir = next(p for p in settings.outbox_dir.iterdir() if p.is_file())
    tag_dir.unlink()
    shutil.move(settings.outbox_dir / "moved-away", tag_dir)
    report = send(engine, settings, issue_id)
    assert report.sent == 12
    assert state(engine, issue_id) == (IssueStatus.SENT, {DeliveryStatus.SENT: len(READERS)})
    assert recipients(settings.outbox_dir) == Counter(READERS)
    assert not leftovers(settings.outbox_dir)


def test_the_outbox_raises_a_fatal_error_naming_the_directory_and_keeps_what_it_wrote(settings, samples):
    """The adapter on its own: the first write that fails ends the batch as FATAL, and the results
    of the messages already written travel with it, so they are recorded, never resent."""
    rendered = Renderer().render_issue(issue_from(samples[:1], settings, week=Week(2026, 48)))
    mailer = IssueMailer(rendered, settings, tag="2026-w48", expires_at=2_000_000_000)
    messages = [
        mailer.message(delivery_id=n, subscriber_id=n, email=f"r{n}@example.com") for n in range(1, 5)
    ]
    provider = OutboxProvider(settings.outbox_dir)
    provider.path_for(messages[2]).mkdir(parents=True)  # a directory where the third file must go
    with pytest.raises(ProviderError) as failure:
        provider._send_all(messages)
    error = failure.value
    assert error.failure == Failure.FATAL
    assert f"cannot write to {settings.outbox_dir / '2026-w48'}: Is a directory (EISDIR)" in str(error)
    assert sorted(error.completed) == [0, 1]
    assert all(result.accepted for result in error.completed.values())
    assert sum(recipients(settings.outbox_dir).values()) == 2
    assert not leftovers(settings.outbox_dir), "the temporary file of the failed write is gone"


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("file-in-the-way", r"(Not a directory|File exists)"),
        ("/proc/newsletter-outbox-test", r"No such file or directory"),
    ],
)
def test_newsletter_issue_send_on_a_disk_it_cannot_write_exits_1_saying_where_and_why(
    tmp_path, settings, engine, issue_id, where, reason
):
    if where == "file-in-the-way":
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        (outbox / this_week(settings).label.lower()).write_text("a file where the directory belongs")
    else:
        outbox = Path(where)
    result = run(tmp_path, "issue", "send", env=env_for(settings, NEWSLETTER_OUTBOX_DIR=str(outbox)))
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert re.search(rf"cannot write to {re.escape(str(outbox))}/\S+: {reason}", message), message
    assert "nothing was changed" in message and "Traceback" not in message
    assert state(engine, issue_id) == (IssueStatus.DRAFT, {})


@pytest.fixture
def tiny_disk(tmp_path):
    """A 600 KB filesystem: room for a few messages of an issue, not twenty."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "600k"):
        pytest.skip("this machine does not let the test mount a tmpfs (needs root with CAP_SYS_ADMIN)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_disk_that_fills_up_mid_send_exits_1_and_a_rerun_after_freeing_it_sends_everyone_once(
    tmp_path, settings, engine, issue_id, tiny_disk
):
    env = env_for(settings, NEWSLETTER_OUTBOX_DIR=str(tiny_disk), NEWSLETTER_SEND_BATCH_SIZE="2")
    result = run(tmp_path, "issue", "send", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "No space left on device (ENOSPC)" in message and str(tiny_disk) in message, message
    assert "the remaining readers are still queued" in message and "Traceback" not in message
    status, counts = state(engine, issue_id)
    written = sum(recipients(tiny_disk).values())
    assert status == IssueStatus.SENDING
    assert 0 < written < len(READERS)
    assert counts == {DeliveryStatus.SENT: written, DeliveryStatus.QUEUED: len(READERS) - written}
    assert f"after {written} of {len(READERS)} deliveries" in message
    lines = re.findall(r"(\d+) of (\d+) deliveries done", result.stderr)
    assert lines and all(int(done) <= written for done, _ in lines), result.stderr
    assert not leftovers(tiny_disk), "a failed write leaves no temporary file"

    subprocess.run(["mount", "-o", "remount,size=20m", str(tiny_disk)], check=True)
    again = run(tmp_path, "issue", "send", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"sent {len(READERS) - written}" in again.stdout
    assert recipients(tiny_disk) == Counter(READERS)
    assert state(engine, issue_id) == (IssueStatus.SENT, {DeliveryStatus.SENT: len(READERS)})


# --- 3. progress counts only what happened --------------------------------------------------------------


def test_a_fatal_provider_error_is_never_reported_as_done(tmp_path, engine, settings, issue_id):
    small = settings.model_copy(update={"send_batch_size": 3, "send_concurrency": 2})
    seen: list[tuple[int, int]] = []
    with pytest.raises(SendAborted, match="401") as stop:
        send(
            engine,
            small,
            issue_id,
            FatalAfter(settings.outbox_dir, batches=2),
            lambda done, total: seen.append((done, total)),
        )
    sent = state(engine, issue_id)[1][DeliveryStatus.SENT]
    assert sent == 6 == stop.value.report.settled
    assert seen[-1] == (6, len(READERS))
    assert max(done for done, _ in seen) == sent


# --- cancelling a send that stopped ------------------------------------------------------------------


def test_a_stopped_send_can_be_cancelled_the_queue_is_suppressed_and_what_was_sent_stays(
    tmp_path, engine, settings, issue_id
):
    small = settings.model_copy(update={"send_batch_size": 5, "send_concurrency": 1})
    with pytest.raises(SendAborted):
        send(engine, small, issue_id, FatalAfter(settings.outbox_dir, batches=1))
    result = run(tmp_path, "issue", "cancel", env=env_for(settings))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is cancelled" in result.stdout and "5 reader(s) already had it" in result.stdout
    status, counts = state(engine, issue_id)
    assert status == IssueStatus.CANCELLED
    assert counts == {DeliveryStatus.SENT: 5, DeliveryStatus.SUPPRESSED: 15}
    with Session(engine) as session:
        reasons = set(
            session.exec(select(Delivery.last_error).where(Delivery.status == DeliveryStatus.SUPPRESSED))
        )
    assert reasons == {ledger.CANCELLED_QUEUED}

    again = run(tmp_path, "issue", "send", env=env_for(settings))
    assert again.returncode == 1 and "cancelled" in again.stderr
    retried = run(tmp_path, "issue", "retry", env=env_for(settings))
    assert retried.returncode == 1
    assert sum(recipients(settings.outbox_dir).values()) == 5


def test_a_send_with_a_live_sender_cannot_be_cancelled(engine, settings, issue_id):
    with session_scope(engine) as session:
        ledger.open_send(session, issue_id)
    ledger.take_lease(engine, issue_id, ledger.sender_identity(), 60)  # this process: alive
    with session_scope(engine) as session, pytest.raises(EditionError, match="is being sent by"):
        cancel(session, session.get(Issue, issue_id))
    assert state(engine, issue_id)[0] == IssueStatus.SENDING


def test_rows_in_flight_with_a_live_worker_refuse_the_cancel(engine, settings, issue_id):
    with session_scope(engine) as session:
        ledger.open_send(session, issue_id)
    ledger.claim(engine, issue_id, 4, ledger.sender_identity(), 60)
    with session_scope(engine) as session, pytest.raises(EditionError, match="in flight with"):
        cancel(session, session.get(Issue, issue_id))


def test_rows_a_dead_sender_left_in_flight_are_cancelled_as_of_unknown_outcome(engine, settings, issue_id):
    with session_scope(engine) as session:
        ledger.open_send(session, issue_id)
    dead = dead_sender()
    ledger.take_lease(engine, issue_id, dead, 60)
    ledger.claim(engine, issue_id, 4, dead, 60)
    with session_scope(engine) as session:
        cancel(session, session.get(Issue, issue_id))
    with Session(engine) as session:
        reasons = Counter(session.exec(select(Delivery.last_error)))
    assert reasons == {ledger.CANCELLED_IN_FLIGHT: 4, ledger.CANCELLED_QUEUED: 16}


def test_a_sender_finishing_after_a_cancel_does_not_mark_the_issue_sent(engine, settings, issue_id):
    with session_scope(engine) as session:
        ledger.open_send(session, issue_id)
    worker = Sender(engine, settings, OutboxProvider(settings.outbox_dir))
    batch, _ = ledger.claim(engine, issue_id, 4, worker.identity, 60)
    with session_scope(engine) as session:  # the worker's lease has run out: the editor may cancel
        session.execute(update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        cancel(session, session.get(Issue, issue_id))
    report = SendReport(week="")
    asyncio.run(worker._deliver(issue_id, batch, report))  # its batch in flight still lands
    worker._finish(issue_id)
    assert report.sent == 4
    assert state(engine, issue_id)[0] == IssueStatus.CANCELLED
    assert asyncio.run(worker.work(issue_id)).sent == 0


# --- a provider that takes nothing, and deliveries that fail -------------------------------------------

UNREACHABLE = {
    "smtp": {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_URL": "smtp://127.0.0.1:1"},
    "postmark": {
        "NEWSLETTER_PROVIDER": "postmark",
        "NEWSLETTER_API_BASE_URL": "http://127.0.0.1:1",
        "POSTMARK_SERVER_TOKEN": "a-token",
    },
}


@pytest.mark.parametrize("provider", list(UNREACHABLE))
def test_a_provider_that_cannot_be_reached_stops_the_send_keeps_the_queue_and_exits_1(
    tmp_path, engine, settings, issue_id, provider
):
    """Not `sent 0, failed 20` and a `sent` issue: the send stops like a fatal error, says why,
    keeps every reader queued; a rerun through a working provider finishes it, or a cancel ends it."""
    env = env_for(settings, NEWSLETTER_SEND_MAX_ATTEMPTS="2", **UNREACHABLE[provider])
    result = run(tmp_path, "issue", "send", "--force", env=env)
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the send stopped" in message and "cannot connect" in message, message
    assert "the remaining readers are still queued" in message and "Traceback" not in message
    assert "sent 0" not in result.stdout
    assert state(engine, issue_id) == (IssueStatus.SENDING, {DeliveryStatus.QUEUED: len(READERS)})
    if provider == "smtp":
        again = run(tmp_path, "issue", "send", env=env_for(settings))
        assert again.returncode == 0, again.stdout + again.stderr
        assert recipients(settings.outbox_dir) == Counter(READERS)
        assert state(engine, issue_id) == (IssueStatus.SENT, {DeliveryStatus.SENT: len(READERS)})
    else:
        cancelled = run(tmp_path, "issue", "cancel", env=env_for(settings))
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert state(engine, issue_id)[0] == IssueStatus.CANCELLED


def test_a_send_that_ends_with_failed_deliveries_exits_1_and_names_them(tmp_path, engine, settings, issue_id):
    """The provider took the requests but refused some messages (SMTP 451): the others are sent, the
    issue is sent, the failures are listed and the command exits 1; `issue retry` sends them later."""
    from aiosmtpd.controller import Controller

    from tests.web_server import free_port

    class Busy:
        refuse = True

        async def handle_RCPT(self, server, session, envelope, address, options):
            if self.refuse and address in READERS[:3]:
                return "451 4.3.0 Mailbox busy, try again later"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    handler = Busy()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp = {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}"}
        result = run(tmp_path, "issue", "send", "--force", env=env_for(settings, **smtp))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"sent {len(READERS) - 3} " in result.stdout and "failed 3" in result.stdout
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert errors[-1].startswith("error: 3 of 20 deliveries failed (smtp 451"), result.stderr
        assert "newsletter issue retry" in errors[-1] and "Traceback" not in result.stderr
        status, counts = state(engine, issue_id)
        assert status == IssueStatus.SENT
        assert counts == {DeliveryStatus.SENT: len(READERS) - 3, DeliveryStatus.FAILED: 3}
        handler.refuse = False
        retried = run(tmp_path, "issue", "retry", env=env_for(settings, **smtp))
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert state(engine, issue_id) == (IssueStatus.SENT, {DeliveryStatus.SENT: len(READERS)})
    finally:
        controller.stop()
