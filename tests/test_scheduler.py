"""The scheduler: crontab reading, DST, the jobs' decisions, missed runs, restarts, two schedulers at
once and SIGTERM in the middle of a send. Time is controlled with time-machine where it matters."""

from __future__ import annotations

import email
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from sqlmodel import Session, select

from newsletter import jobs, scheduling
from newsletter.config import Settings
from newsletter.content import store_comparisons
from newsletter.crontab import parse_cron
from newsletter.curation import Week
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.editions import approve, compose
from newsletter.models import Delivery, Issue, IssueStatus, Subscriber, SubscriberStatus
from newsletter.samples import dated_into_week
from newsletter.subscriptions import add_active
from tests.commands import newsletter
from tests.conftest import TEST_KEY
from tests.databases import clean_env, database_url
from tests.emulator_server import running_emulator

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
READERS = [f"sched{n}@example.com" for n in range(20)]


def fires(expr: str, zone: ZoneInfo, start: datetime, count: int) -> list[datetime]:
    trigger, previous, now, out = parse_cron(expr, zone), None, start, []
    for _ in range(count):
        previous = trigger.get_next_fire_time(previous, now)
        out.append(previous)
        now = previous + timedelta(seconds=1)
    return out


# --- reading crontab ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "weekdays"),
    [
        ("0 9 * * 1", {"Monday"}),
        ("0 12 * * 5", {"Friday"}),
        ("0 9 * * 0", {"Sunday"}),
        ("0 9 * * 7", {"Sunday"}),
        ("0 9 * * 1-5", {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
        ("0 9 * * sat,sun", {"Saturday", "Sunday"}),
        ("0 9 * * 5-1", {"Friday", "Saturday", "Sunday", "Monday"}),
    ],
)
def test_weekdays_are_read_as_crontab_reads_them(expr, weekdays):
    found = {f.strftime("%A") for f in fires(expr, BERLIN, datetime(2026, 11, 23, tzinfo=BERLIN), 14)}
    assert found == weekdays


@pytest.mark.parametrize("expr", ["0 9 * *", "61 9 * * 1", "0 9 * * 8", "0 9 * * funday", "nonsense"])
def test_a_bad_crontab_is_refused(expr):
    with pytest.raises(ValueError, match=r"crontab|day of the week|Wrong number|value"):
        parse_cron(expr, BERLIN)


def test_a_bad_crontab_setting_is_a_configuration_error():
    with pytest.raises(ValueError, match="send_cron"):
        Settings(_env_file=None, send_cron="0 9 * *")


# --- daylight saving time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "change"),
    [(BERLIN, "2026-03-29"), (BERLIN, "2026-10-25"), (NEW_YORK, "2026-03-08"), (NEW_YORK, "2026-11-01")],
)
def test_the_monday_send_is_at_nine_local_on_both_sides_of_a_dst_change(zone, change):
    start = datetime.fromisoformat(change).replace(tzinfo=zone) - timedelta(days=14)
    runs = fires("0 9 * * 1", zone, start, 4)
    assert all(run.astimezone(zone).strftime("%a %H:%M") == "Mon 09:00" for run in runs)
    offsets = {run.astimezone(zone).utcoffset() for run in runs}
    assert len(offsets) == 2, "the runs straddle the change"
    utc = [run.astimezone(UTC) for run in runs]
    gaps = {utc[i + 1] - utc[i] for i in range(3)}
    assert timedelta(days=7) in gaps and len(gaps) == 2, "one week is an hour shorter or longer"


@pytest.mark.parametrize(
    ("zone", "day", "expr"),
    [
        (BERLIN, "2026-03-29", "30 2 * * *"),
        (NEW_YORK, "2026-03-08", "30 2 * * *"),  # skipped hour
        (BERLIN, "2026-10-25", "30 2 * * *"),
        (NEW_YORK, "2026-11-01", "30 1 * * *"),  # repeated hour
    ],
)
def test_a_schedule_in_the_skipped_or_repeated_hour_fires_once_that_day(zone, day, expr):
    runs = fires(expr, zone, datetime.fromisoformat(day).replace(tzinfo=zone) - timedelta(days=1), 3)
    local_days = Counter(run.astimezone(zone).date().isoformat() for run in runs)
    assert local_days[day] == 1, runs


def _plain_fires(expr, zone, start):
    from apscheduler.triggers.cron import CronTrigger

    trigger, previous, now, out = CronTrigger.from_crontab(expr, timezone=zone), None, start, []
    for _ in range(3):
        previous = trigger.get_next_fire_time(previous, now)
        out.append(previous)
        now = previous + timedelta(seconds=1)
    return out


def test_the_repeated_hour_really_is_fired_twice_without_the_fix():
    day = "2026-10-25"
    plain = Counter(
        d.astimezone(BERLIN).date().isoformat()
        for d in _plain_fires("30 2 * * *", BERLIN, datetime.fromisoformat(day).replace(tzinfo=BERLIN))
    )
    assert plain[day] >= 2, "plain APScheduler fires the repeated 02:30 more than once"


# --- the jobs' decisions ----------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path, samples):
    """A Berlin store with week 2026-W48's samples and readers, and the scheduler context set."""
    url = database_url(tmp_path)
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=TEST_KEY,
        timezone="Europe/Berlin",
        outbox_dir=tmp_path / "outbox",
        editor_emails="editor@example.com",
        send_mode="inline",  # these tests are about the scheduler sending itself, on either database
    )
    engine = make_engine(url)
    create_schema(engine)
    with session_scope(engine) as session:
        store_comparisons(
            session, dated_into_week(samples, datetime(2026, 11, 26, 12, tzinfo=UTC), BERLIN), BERLIN
        )
        add_active(session, READERS, source="test", key=TEST_KEY.encode())
    jobs.set_context(jobs.Context(settings, engine, threading.Event()))
    yield settings, engine, tmp_path
    engine.dispose()


def outbox(tmp_path, kind: str = "2026-w48") -> Counter:
    return Counter(
        email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]
        for p in (tmp_path / "outbox" / kind).glob("*.eml")
    )


FRIDAY_NOON = datetime(2026, 11, 27, 12, 0, tzinfo=BERLIN)
MONDAY_NINE = datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)


def status(engine, week="2026-W48") -> str | None:
    with Session(engine) as session:
        issue = session.exec(select(Issue).where(Issue.week == week)).first()
        return issue.status if issue else None


def test_compose_then_an_unapproved_draft_is_not_sent_and_the_editors_are_told(world, caplog):
    settings, engine, tmp_path = world
    assert "draft created with 3 comparison(s)" in jobs.compose_job(FRIDAY_NOON)
    with caplog.at_level(logging.WARNING, logger="newsletter.scheduler"):
        message = jobs.send_job(MONDAY_NINE)
    assert "NOT SENT" in message and "NOT SENT" in caplog.text
    assert status(engine) == IssueStatus.DRAFT
    assert outbox(tmp_path) == Counter()
    assert outbox(tmp_path, "editor-alert") == Counter({"editor@example.com": 1})


def test_an_editors_alert_the_provider_cannot_take_is_one_error_line_without_a_traceback(world, caplog):
    settings, engine, tmp_path = world
    jobs.compose_job(FRIDAY_NOON)
    unreachable = settings.model_copy(update={"provider": "smtp", "smtp_url": "smtp://127.0.0.1:1"})
    jobs.set_context(jobs.Context(unreachable, engine, threading.Event()))
    with caplog.at_level(logging.ERROR, logger="newsletter.scheduler"):
        jobs.send_job(MONDAY_NINE)
    alerts = [r for r in caplog.records if "editors' alert" in r.getMessage()]
    assert len(alerts) == 1 and "cannot connect to 127.0.0.1:1" in alerts[0].getMessage()
    assert alerts[0].exc_info is None, "an expected provider failure got a traceback"


def test_a_bug_in_a_send_still_logs_its_traceback(caplog):
    from newsletter.providers.base import ProviderError, log_send_failure

    log = logging.getLogger("newsletter.test")
    with caplog.at_level(logging.ERROR, logger="newsletter.test"):
        log_send_failure(log, "a send", ProviderError("smtp: cannot connect"))
        log_send_failure(log, "a send", KeyError("a bug"))
    expected, bug = caplog.records
    assert expected.exc_info is None and "a send failed: smtp: cannot connect" in expected.getMessage()
    assert bug.exc_info is not None and "unexpectedly" in bug.getMessage()


def test_an_approved_issue_is_sent_once_by_the_monday_run(world):
    settings, engine, tmp_path = world
    jobs.compose_job(FRIDAY_NOON)
    with session_scope(engine) as session:
        approve(session, session.exec(select(Issue)).one(), settings)
    assert "20 sent" in jobs.send_job(MONDAY_NINE)
    assert "already sent" in jobs.send_job(MONDAY_NINE + timedelta(minutes=5))
    assert status(engine) == IssueStatus.SENT
    assert outbox(tmp_path) == Counter(dict.fromkeys(READERS, 1))


def test_auto_approve_lets_the_scheduler_run_the_week_alone(world):
    settings, engine, tmp_path = world
    jobs.set_context(
        jobs.Context(settings.model_copy(update={"auto_approve": True}), engine, threading.Event())
    )
    assert "approved (NEWSLETTER_AUTO_APPROVE)" in jobs.compose_job(FRIDAY_NOON)
    assert "20 sent" in jobs.send_job(MONDAY_NINE)


def test_a_week_with_nothing_to_send_says_so(world):
    settings, engine, tmp_path = world
    assert "nothing composed" in jobs.compose_job(datetime(2026, 6, 5, 12, tzinfo=BERLIN))
    assert "nothing to send" in jobs.send_job(datetime(2026, 6, 8, 9, tzinfo=BERLIN))


def test_a_cancelled_issue_is_not_sent(world):
    settings, engine, tmp_path = world
    jobs.compose_job(FRIDAY_NOON)
    with session_scope(engine) as session:
        session.exec(select(Issue)).one().status = IssueStatus.CANCELLED
    assert "nothing to send" in jobs.send_job(MONDAY_NINE)


def test_purge_deletes_signups_never_confirmed_in_time(world):
    settings, engine, tmp_path = world
    now = datetime(2026, 11, 30, tzinfo=UTC)
    with session_scope(engine) as session:
        session.add(
            Subscriber(
                email="old@example.com", status=SubscriberStatus.PENDING, requested_at=now - timedelta(days=8)
            )
        )
        session.add(
            Subscriber(
                email="fresh@example.com",
                status=SubscriberStatus.PENDING,
                requested_at=now - timedelta(days=2),
            )
        )
    assert "1 expired pending signup(s) deleted" in jobs.purge_job(now)
    with Session(engine) as session:
        left = {s.email for s in session.exec(select(Subscriber).where(Subscriber.status == "pending"))}
    assert left == {"fresh@example.com"}


def test_retry_and_resume_finish_recent_sends(world):
    settings, engine, tmp_path = world
    jobs.compose_job(FRIDAY_NOON)
    with session_scope(engine) as session:
        issue = session.exec(select(Issue)).one()
        approve(session, issue, settings)
    jobs.send_job(MONDAY_NINE)
    with session_scope(engine) as session:  # two failed deliveries, as a provider outage leaves them
        rows = session.exec(select(Delivery).limit(2)).all()
        for row in rows:
            row.status = "failed"
            (tmp_path / "outbox" / "2026-w48" / f"2026-w48.{row.id}.eml").unlink()
    assert "2 sent" in jobs.retry_job()
    assert outbox(tmp_path) == Counter(dict.fromkeys(READERS, 1))
    with session_scope(engine) as session:
        issue = session.exec(select(Issue)).one()
        issue.status, issue.sender, issue.sender_lease_until = IssueStatus.SENDING, None, None
    assert "0 sent" in jobs.resume_job()
    assert status(engine) == IssueStatus.SENT


# --- missed runs, with controlled time ---------------------------------------------------------------------


def run_scheduler_for(settings, engine, seconds: float) -> list:
    """Start the scheduler (jobs from the store), let it run `seconds`, return its job events."""
    events = []
    scheduler = scheduling.build_scheduler(settings, engine)
    scheduler.add_listener(events.append, EVENT_JOB_EXECUTED | EVENT_JOB_MISSED)
    scheduler.resume()
    time.sleep(seconds)
    scheduler.shutdown(wait=True)
    return [(e.job_id, "missed" if e.code == EVENT_JOB_MISSED else "ran") for e in events]


def approved_week48(settings, engine):
    with session_scope(engine) as session:
        issue = compose(session, Week.parse("2026-W48"), settings).issue
        approve(session, issue, settings)


@pytest.mark.parametrize(("late", "expected"), [(timedelta(hours=3), "ran"), (timedelta(hours=7), "missed")])
def test_a_missed_send_runs_once_within_the_grace_and_not_after(world, late, expected):
    settings, engine, tmp_path = world
    approved_week48(settings, engine)
    with time_machine.travel(datetime(2026, 11, 28, 10, tzinfo=BERLIN), tick=True):  # Saturday: jobs stored
        run_scheduler_for(settings, engine, 0.3)
    with time_machine.travel(MONDAY_NINE + late, tick=True):  # the scheduler was down at 09:00
        events = run_scheduler_for(settings, engine, 1.5)
    assert ("send", expected) in events
    assert events.count(("send", "ran")) == (1 if expected == "ran" else 0)
    assert status(engine) == (IssueStatus.SENT if expected == "ran" else IssueStatus.APPROVED)
    assert outbox(tmp_path) == (Counter(dict.fromkeys(READERS, 1)) if expected == "ran" else Counter())


def test_several_missed_weeks_produce_one_send_run(world):
    settings, engine, tmp_path = world
    approved_week48(settings, engine)
    with time_machine.travel(datetime(2026, 11, 10, 10, tzinfo=BERLIN), tick=True):  # three Mondays ago
        run_scheduler_for(settings, engine, 0.3)
    with time_machine.travel(MONDAY_NINE + timedelta(hours=1), tick=True):
        events = run_scheduler_for(settings, engine, 1.5)
    assert events.count(("send", "ran")) == 1
    assert outbox(tmp_path) == Counter(dict.fromkeys(READERS, 1))


def test_the_dst_monday_send_fires_at_nine_local(world):
    """Monday 30 March 2026, the day after Berlin moved to summer time: the send fires at 09:00 CEST."""
    settings, engine, tmp_path = world
    fired = []
    with time_machine.travel(datetime(2026, 3, 30, 8, 59, 58, tzinfo=BERLIN), tick=True):
        scheduler = scheduling.build_scheduler(settings, engine)
        scheduler.add_listener(lambda e: fired.append((e.job_id, datetime.now(BERLIN))), EVENT_JOB_EXECUTED)
        scheduler.resume()
        time.sleep(3.5)
        scheduler.shutdown(wait=True)
    sends = [when for job, when in fired if job == "send"]
    assert len(sends) == 1
    assert sends[0].strftime("%H:%M %Z") == "09:00 CEST"


def test_a_restart_keeps_the_jobs_and_their_next_runs(world):
    settings, engine, tmp_path = world
    with time_machine.travel(datetime(2026, 11, 24, 10, tzinfo=BERLIN), tick=True):
        first = scheduling.build_scheduler(settings, engine)
        before = {job.id: job.next_run_time for job in first.get_jobs()}
        first.shutdown()
    with time_machine.travel(datetime(2026, 11, 26, 10, tzinfo=BERLIN), tick=True):
        second = scheduling.build_scheduler(settings, engine)
        after = {job.id: job.next_run_time for job in second.get_jobs()}
        second.shutdown()
    assert set(before) == set(after) == {"compose", "send", "retry", "purge", "resume", "retention", "sunset"}
    assert after["send"] == before["send"] == MONDAY_NINE
    changed = settings.model_copy(update={"send_cron": "0 8 * * 1"})
    with time_machine.travel(datetime(2026, 11, 26, 10, tzinfo=BERLIN), tick=True):
        third = scheduling.build_scheduler(changed, engine)
        assert third.get_job("send").next_run_time == MONDAY_NINE - timedelta(hours=1)
        assert len(third.get_jobs()) == 7
        third.shutdown()


def test_the_jobs_are_stored_under_the_name_every_version_resolves(world):
    """The store names each job's function `newsletter.scheduling:<job>`, as it always has: schedulers
    of several versions may share a store, and one that cannot resolve a row deletes it."""
    settings, engine, tmp_path = world
    scheduler = scheduling.build_scheduler(settings, engine)
    stored = {job.id: (job.func_ref, job.func) for job in scheduler.get_jobs()}  # read back from the store
    scheduler.shutdown()
    assert len(stored) == 7
    for job_id, (reference, function) in stored.items():
        assert reference == f"newsletter.scheduling:{job_id}_job"
        assert function is getattr(jobs, f"{job_id}_job")


# --- real processes -------------------------------------------------------------------------------------


def scheduler_env(tmp_path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = clean_env(tmp_path)
    return (
        env
        | {
            "NEWSLETTER_SECRET_KEY": TEST_KEY,
            "NEWSLETTER_TIMEZONE": "Europe/Berlin",
            "COLUMNS": "200",
            "NEWSLETTER_AUTO_APPROVE": "true",
            "NEWSLETTER_SEND_MODE": "inline",  # the scheduler sends itself, on either database
        }
        | (extra or {})
    )


def prepare_for_processes(tmp_path, env, readers: int):
    """A store with this week composed and approved, and the send job stored to fire in 3 seconds."""

    def run(*args):
        return newsletter(tmp_path, env, *args, check=True)

    run("init", "--sample")
    (tmp_path / "list.csv").write_text(
        "email\n" + "\n".join(f"p{n}@example.com" for n in range(readers)) + "\n"
    )
    run("subscribers", "import", str(tmp_path / "list.csv"))
    run("issue", "compose")
    run("issue", "approve")
    settings = Settings(
        _env_file=None,
        database_url=database_url(tmp_path),
        secret_key=TEST_KEY,
        timezone="Europe/Berlin",
        auto_approve=True,
        send_mode="inline",
    )
    engine = make_engine(settings.database_url)
    scheduler = scheduling.build_scheduler(settings, engine)
    scheduler.modify_job("send", next_run_time=datetime.now(UTC) + timedelta(seconds=3))
    scheduler.shutdown()
    return engine


SCHEDULER = Path(__file__).parent.parent / "scheduler.py"


def start_scheduler(tmp_path, env, name: str) -> subprocess.Popen:
    """`python scheduler.py`, as production runs it."""
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        [sys.executable, str(SCHEDULER)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def test_two_scheduler_processes_on_one_store_send_the_issue_once(tmp_path):
    env = scheduler_env(tmp_path, {"NEWSLETTER_SEND_BATCH_SIZE": "10"})
    engine = prepare_for_processes(tmp_path, env, readers=200)
    first, second = start_scheduler(tmp_path, env, "one"), start_scheduler(tmp_path, env, "two")
    deadline = time.monotonic() + 30
    while status(engine, Week.containing(datetime.now(UTC), BERLIN).label) != IssueStatus.SENT:
        assert time.monotonic() < deadline, "the issue was not sent"
        time.sleep(0.2)
    time.sleep(1.5)
    for process in (first, second):
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    week = Week.containing(datetime.now(UTC), BERLIN).label.lower()
    got = outbox(tmp_path, week)
    assert len(got) == 200 and set(got.values()) == {1}
    logs = (tmp_path / "one.log").read_text() + (tmp_path / "two.log").read_text()
    assert logs.count(f"send {week.upper()}: 200 sent") == 1
    # The other process either found the job already advanced in the shared job store, or ran it and
    # was refused by the lease, or found the issue sent: never a second send.
    assert "Traceback" not in logs, logs[logs.find("Traceback") - 300 :][:3000]


def test_a_second_send_of_the_same_issue_at_the_same_time_is_refused_by_the_lease(tmp_path):
    with running_emulator() as emulator:
        env = scheduler_env(
            tmp_path, emulator.provider_env("postmark") | {"NEWSLETTER_SEND_BATCH_SIZE": "10"}
        )
        prepare_for_processes(tmp_path, env, readers=150)
        # Every answer waits 5 s while the second process starts (which takes seconds on a loaded
        # machine): the first still holds the lease when the second asks; then the rest goes at once.
        emulator.faults(answer_delay_ms=5000)
        first = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "issue", "send"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while not emulator.counts():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = newsletter(tmp_path, env, "issue", "send", timeout=60)
        assert second.returncode == 1 and "is being sent by" in second.stderr
        emulator.faults(answer_delay_ms=0)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        counts = emulator.counts()
        assert len(counts) == 150 and set(counts.values()) == {1}


def test_sigterm_in_the_middle_of_a_send_finishes_the_batch_and_a_restart_finishes_the_send(tmp_path):
    with running_emulator() as emulator:
        env = scheduler_env(
            tmp_path,
            emulator.provider_env("postmark")
            | {"NEWSLETTER_SEND_BATCH_SIZE": "10", "NEWSLETTER_SEND_CONCURRENCY": "2"},
        )
        engine = prepare_for_processes(tmp_path, env, readers=300)
        emulator.faults(answer_delay_ms=250)
        process = start_scheduler(tmp_path, env, "first")
        deadline = time.monotonic() + 30
        while sum(emulator.counts().values()) < 40:
            assert time.monotonic() < deadline and process.poll() is None, "the send did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        log = (tmp_path / "first.log").read_text()
        assert (
            "received SIGTERM" in log
            and "stopped before the end (shutdown)" in log
            and "Traceback" not in log
        )
        with Session(engine) as session:
            states = Counter(session.exec(select(Delivery.status)).all())
        assert states["sending"] == 0, "in-flight batches were finished and recorded"
        assert 0 < states["sent"] < 300 and states["queued"] > 0
        assert states["sent"] == sum(emulator.counts().values())

        emulator.faults()
        restart = start_scheduler(tmp_path, env, "second")
        deadline = time.monotonic() + 60
        while status(engine, Week.containing(datetime.now(UTC), BERLIN).label) != IssueStatus.SENT:
            assert time.monotonic() < deadline, (tmp_path / "second.log").read_text()
            time.sleep(0.2)
        restart.send_signal(signal.SIGTERM)
        assert restart.wait(timeout=20) == 0
        counts = emulator.counts()
        assert len(counts) == 300 and set(counts.values()) == {1}
