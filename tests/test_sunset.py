"""Re-engagement and sunset across three real sends, with time controlled by time-machine: who is
asked (never on opens), who stays, who is let go 14 days later with the reason `sunset` and an event,
what the report and `newsletter subscribers stats` say, and two schedulers at once asking each reader
once. On SQLite and PostgreSQL alike (NEWSLETTER_TEST_DATABASE)."""

from __future__ import annotations

import email
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy
from zoneinfo import ZoneInfo

import time_machine
from sqlmodel import Session, select

from newsletter import jobs, sunset
from newsletter.config import Settings
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.editions import approve, find_issue
from newsletter.letters import STAY_PURPOSE
from newsletter.models import (
    Comparison,
    Issue,
    IssueLink,
    LinkHit,
    Subscriber,
    SubscriberEvent,
    SunsetAsk,
    Tool,
    WebhookMessage,
)
from newsletter.outgoing_webhooks import endpoints
from newsletter.providers import make_provider
from newsletter.samples import dated_into_week
from newsletter.subscriptions import add_active, set_tracking
from newsletter.tokens import Signer
from newsletter.tracking.links import LinkKind
from newsletter.votes import record_vote
from tests.commands import newsletter
from tests.conftest import TEST_KEY
from tests.databases import clean_env, database_url
from tests.emulator_server import running_emulator

BERLIN = ZoneInfo("Europe/Berlin")
WEEKS = ("2026-W46", "2026-W47", "2026-W48")
AFTER_THIRD = datetime(2026, 11, 24, 11, 0, tzinfo=BERLIN)  # the Tuesday after the third issue
READERS = ("clicker", "voter", "machine", "opener", "stayer", "silent", "late", "notrack")
# How the five questions of the silent-readers test end, in the store and in the issue report alike.
ENDINGS = {"asked": 5, "waiting": 0, "stayed": 1, "engaged": 1, "let_go": 3, "left": 0}


def monday(week: str) -> datetime:
    return datetime.combine(Week.parse(week).monday, datetime.min.time(), BERLIN).replace(hour=9)


def address(name: str) -> str:
    return f"{name}@example.com"


def build(tmp_path, samples, readers=READERS, **overrides):
    """A Berlin store whose readers got the three issues W46-W48 through the outbox (`newcomer` only
    the last two), and the scheduler's context set."""
    settings = Settings(
        _env_file=None,
        database_url=database_url(tmp_path),
        secret_key=TEST_KEY,
        timezone="Europe/Berlin",
        outbox_dir=tmp_path / "outbox",
        send_mode="inline",
        tracking="clicks+opens",
        sunset_issues=3,
        **overrides,
    )
    engine = make_engine(settings.database_url)
    create_schema(engine)
    jobs.set_context(jobs.Context(settings, engine, threading.Event()))
    before = datetime(2026, 11, 1, 12, tzinfo=BERLIN)
    with time_machine.travel(before, tick=False), session_scope(engine) as session:
        add_active(session, [address(name) for name in readers], source="test", key=TEST_KEY.encode())
        if "notrack" in readers:  # turned click tracking off: never judged by clicks
            set_tracking(session, reader(session, "notrack"), False, client=None)
    for number, week in enumerate(WEEKS):
        if number == 1:
            with (
                time_machine.travel(monday(week) - timedelta(days=1), tick=False),
                session_scope(engine) as s,
            ):
                add_active(s, [address("newcomer")], source="test", key=TEST_KEY.encode())
        send_week(settings, engine, samples, week)
    return settings, engine


def send_week(settings, engine, samples, week: str) -> None:
    at = monday(week)
    with time_machine.travel(at, tick=True):
        own = [item.model_copy(update={"slug": f"{item.slug}-{week.lower()}"}) for item in samples]
        with session_scope(engine) as session:
            store_comparisons(session, dated_into_week(own, at, BERLIN), BERLIN)
        assert "draft created" in jobs.compose_job(at)
        with session_scope(engine) as session:
            approve(session, find_issue(session, Week.parse(week)), settings)
        assert " sent" in jobs.send_job(at)


def reader(session, name: str) -> Subscriber:
    return session.exec(select(Subscriber).where(Subscriber.email == address(name))).one()


def issue_id(session, week: str) -> int:
    return session.exec(select(Issue.id).where(Issue.week == week)).one()


def hit(engine, name: str, week: str, at: datetime, *, kind=LinkKind.COMPARISON, machine=False) -> None:
    """A stored hit on one of the issue's links, as the redirect records it after judging it."""
    with session_scope(engine) as session:
        issue = issue_id(session, week)
        link = session.exec(
            select(IssueLink).where(IssueLink.issue_id == issue, IssueLink.kind == kind)
        ).first()
        session.add(
            LinkHit(
                issue_id=issue,
                subscriber_id=reader(session, name).id,
                link_id=link.id,
                at=at.astimezone(UTC),
                method="GET",
                agent="browser",
                machine=machine,
                reason="early" if machine else "",
            )
        )


def asked_mail(tmp_path) -> Counter:
    return Counter(
        email.message_from_bytes(path.read_bytes(), policy=policy.default)["To"]
        for path in (tmp_path / "outbox" / "sunset").glob("*.eml")
    )


def outcomes(engine) -> dict[str, str | None]:
    with Session(engine) as session:
        rows = session.exec(select(Subscriber.email, SunsetAsk.outcome).join(SunsetAsk)).all()
    return {mail.split("@")[0]: outcome for mail, outcome in rows}


def statuses(engine) -> dict[str, str]:
    with Session(engine) as session:
        return {s.email.split("@")[0]: s.status for s in session.exec(select(Subscriber))}


def run_job(at: datetime) -> str:
    with time_machine.travel(at, tick=True):
        return jobs.sunset_job()


def test_silent_readers_are_asked_once_and_let_go_fourteen_days_later_unless_they_stay(tmp_path, samples):
    settings, engine = build(tmp_path, samples)
    with session_scope(engine) as session:  # an outgoing webhook endpoint hears who leaves
        endpoints.add(session, "https://crm.example/hooks", "subscriber.unsubscribed", key=TEST_KEY.encode())
    hit(engine, "clicker", "2026-W47", monday("2026-W47") + timedelta(hours=3))  # a person's click
    hit(engine, "machine", "2026-W48", monday("2026-W48") + timedelta(seconds=20), machine=True)
    hit(engine, "opener", "2026-W48", monday("2026-W48") + timedelta(hours=2), kind=LinkKind.OPEN)
    voted = monday("2026-W48") + timedelta(hours=1)
    with time_machine.travel(voted, tick=False), session_scope(engine) as session:
        comparison = session.exec(select(Comparison).where(Comparison.slug.endswith("-2026-w48"))).first()
        tool = session.get(Tool, comparison.left_tool_id)
        voter = reader(session, "voter").id
        record_vote(session, voter, comparison, tool, "ship", issue_id(session, WEEKS[2]))

    summary = run_job(AFTER_THIRD)
    assert "5 asked, 5 question(s) sent" in summary, summary
    asked = {"machine", "opener", "stayer", "silent", "late"}  # an open and a machine's click say nothing
    assert asked_mail(tmp_path) == Counter({address(name): 1 for name in asked})
    assert set(outcomes(engine)) == asked and set(outcomes(engine).values()) == {None}
    with Session(engine) as session:
        events = session.exec(select(SubscriberEvent).where(SubscriberEvent.kind == "sunset_asked")).all()
        assert len(events) == 5 and {e.source for e in events} == {"sunset"}
        silent_id = reader(session, "silent").id
    assert "0 asked, 0 question(s) sent" in run_job(AFTER_THIRD + timedelta(hours=2)), "asked once"
    assert sum(asked_mail(tmp_path).values()) == 5

    messages = {
        m["To"]: m
        for m in (
            email.message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in (tmp_path / "outbox" / "sunset").glob("*.eml")
        )
    }
    message = messages[address("silent")]
    text = message.get_body(("plain",)).get_content()
    assert message["Subject"] == "Still want the weekly verdicts?"
    words = " ".join(text.split())
    assert "The last 3 issues" in words and "If we do not hear from you by 8 December 2026" in words
    assert "open" not in words.lower(), "opens are never counted, and never mentioned"
    token = text.split("https://verdicts.example.com/stay/", 1)[1].split()[0]
    assert Signer(TEST_KEY.encode()).verify(token, STAY_PURPOSE).subject == silent_id
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/" in message["List-Unsubscribe"] and token not in message["List-Unsubscribe"]

    with time_machine.travel(AFTER_THIRD + timedelta(days=1), tick=False), session_scope(engine) as session:
        assert sunset.stay(session, reader(session, "stayer").id, client="203.0.113.9") == sunset.Stay.STAYED
    hit(engine, "late", "2026-W48", AFTER_THIRD + timedelta(days=2))  # reads after being asked

    # the email names 8 December: the reader has all of that day
    assert "0 let go" in run_job(datetime(2026, 12, 8, 23, 0, tzinfo=BERLIN))
    assert statuses(engine)["silent"] == "active"
    summary = run_job(datetime(2026, 12, 9, 11, 0, tzinfo=BERLIN))
    assert "3 let go" in summary, summary
    assert outcomes(engine) == {
        "machine": "sunset",
        "opener": "sunset",
        "silent": "sunset",
        "stayer": "stayed",
        "late": "engaged",
    }
    let_go = {name for name, status in statuses(engine).items() if status == "unsubscribed"}
    assert let_go == {"machine", "opener", "silent"}
    with Session(engine) as session:
        left = session.exec(
            select(SubscriberEvent).where(
                SubscriberEvent.subscriber_id == silent_id, SubscriberEvent.kind == "unsubscribed"
            )
        ).one()
        assert left.source == "sunset"
        assert session.get(Subscriber, silent_id).status_reason == "sunset"
        told = session.exec(select(WebhookMessage.subject, WebhookMessage.type)).all()
        ids = {reader(session, name).id: name for name in ("machine", "opener", "silent")}
        assert sorted(told) == sorted((f"subscriber:{sid}", "subscriber.unsubscribed") for sid in ids)
        stayed = session.exec(select(SubscriberEvent).where(SubscriberEvent.kind == "stayed")).one()
        assert stayed.detail == "answered the re-engagement question"
        assert sunset.figures(session) == ENDINGS
    assert "0 asked" in run_job(datetime(2026, 12, 10, 11, 0, tzinfo=BERLIN)), "staying resets the count"

    # the report of the span's last issue and `subscribers stats`, through the real command line
    env = clean_env(tmp_path) | {"NEWSLETTER_SECRET_KEY": TEST_KEY, "NEWSLETTER_SUNSET_ISSUES": "3"}
    report = cli(tmp_path, env, "issue", "report", "--week", "2026-W48", "--json")
    assert json.loads(report)["reengagement"] == ENDINGS
    assert (
        json.loads(cli(tmp_path, env, "issue", "report", "--week", "2026-W47", "--json"))["reengagement"][
            "asked"
        ]
        == 0
    )
    assert "Re-engagement after this issue: asked 5: 0 waiting, 2 stayed" in cli(
        tmp_path, env, "issue", "report", "--week", "2026-W48"
    )
    stats = " ".join(cli(tmp_path, env, "subscribers", "stats").split())
    assert (
        "Re-engagement (after 3 silent issues): asked 5: 0 waiting, 2 stayed (1 by the button, 1 by a "
        "click, vote or preferences change), 3 let go, 0 left otherwise"
    ) in stats
    engine.dispose()


def cli(tmp_path, env, *args: str) -> str:
    run = newsletter(tmp_path, env | {"COLUMNS": "200"}, *args)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_nobody_is_asked_when_silence_says_nothing(tmp_path, samples):
    """Off by default; with tracking off; when the span reaches past the hit retention; when an
    issue of the span carried no tracked links."""
    settings, engine = build(tmp_path, samples, readers=("silent",), hit_retention_days=35)

    def job(at, **changes) -> str:
        jobs.set_context(jobs.Context(settings.model_copy(update=changes), engine, threading.Event()))
        return run_job(at)

    assert "nobody asked: off (NEWSLETTER_SUNSET_ISSUES=0)" in job(AFTER_THIRD, sunset_issues=0)
    assert "NEWSLETTER_TRACKING=off" in job(AFTER_THIRD, tracking="off")
    assert "fewer than NEWSLETTER_SUNSET_ISSUES=4" in job(AFTER_THIRD, sunset_issues=4, hit_retention_days=90)
    late = monday("2026-W46") + timedelta(days=36)
    assert "reach back past NEWSLETTER_HIT_RETENTION_DAYS=35" in job(late)
    with session_scope(engine) as session:  # as if W47 had gone out with NEWSLETTER_TRACKING=off
        for link in session.exec(
            select(IssueLink).where(IssueLink.issue_id == issue_id(session, "2026-W47"))
        ):
            link.kind = LinkKind.DECOY
    assert "issue(s) 2026-W47 carried no tracked links" in job(AFTER_THIRD)
    assert outcomes(engine) == {}
    assert not (tmp_path / "outbox" / "sunset").exists()
    engine.dispose()


def test_two_schedulers_at_once_ask_and_email_each_reader_once(tmp_path, samples):
    names = tuple(f"quiet{n}" for n in range(30))
    with running_emulator() as emulator:
        settings, engine = build(tmp_path, samples, readers=names)
        remote = settings.model_copy(update=emulator.provider_settings("postmark") | {"send_batch_size": 7})
        emulator.reset()
        emulator.faults(latency_ms=40)  # requests in flight overlap between the two
        results, errors = [], []

        def one():
            try:
                with time_machine.travel(AFTER_THIRD, tick=True):
                    results.append(sunset.run(engine, remote, make_provider))
            except Exception as exc:  # pragma: no cover - shown by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        assert sum(r.asked for r in results) == 30 and sum(r.sent for r in results) == 30
        assert emulator.counts() == {address(name): 1 for name in names}
    with Session(engine) as session:
        assert len(session.exec(select(SunsetAsk)).all()) == 30
        asked = session.exec(select(SubscriberEvent).where(SubscriberEvent.kind == "sunset_asked")).all()
        assert len(asked) == 30
    engine.dispose()
