"""The welcome email, against a real `newsletter serve` and its outbox: one per reader when they
confirm, never again on a confirmation within a year, again after one; what it says (the cadence in
words, the latest issue, the reader's categories) and that its links work; a provider failure never
fails the confirmation and the scheduler's retry sends the welcome later; NEWSLETTER_WELCOME=false."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from newsletter import jobs
from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.db import make_engine
from newsletter.models import Subscriber, SubscriberEvent, WelcomeMail
from newsletter.tokens import Signer
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import link_in, running_server

SIGNER = Signer(TEST_KEY.encode())
SITE = "https://verdicts.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Berlin list with this week's issue sent to one reader; issues go out on Thursdays at 07:30."""
    directory = tmp_path_factory.mktemp("welcome")
    with running_server(directory, timezone="Europe/Berlin", send_cron="30 7 * * 4") as running:
        for args in (("subscribers", "add", "first@example.com"), ("issue", "compose"), ("issue", "send")):
            result = running.cli(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        running.engine = make_engine(database_url(directory))
        yield running
        running.engine.dispose()


def week_slug() -> str:
    return Week.containing(datetime.now(UTC), UTC).label.lower()


def sign_up(server, address: str) -> None:
    answer = httpx.post(f"{server.url}/api/subscribe", json={"email": address}, timeout=10)
    assert answer.status_code == 202, answer.text


def confirm(server, address: str, nth: int = 1) -> httpx.Response:
    """Press the button of the `nth` confirmation email to `address`."""
    path = link_in(server.mail_to(address, "confirm", count=nth), "/confirm/")
    return httpx.post(server.url + path, timeout=10)


def join(server, address: str, nth: int = 1) -> httpx.Response:
    sign_up(server, address)
    answer = confirm(server, address, nth)
    assert answer.status_code == 200, answer.text
    return answer


def welcomes(server, address: str, *, settle: float = 0.6) -> int:
    time.sleep(settle)  # the welcome goes out after the response: give a second one time to show
    return server.mails_to(address, "welcome")


def reader_id(server, address: str) -> int:
    with Session(server.engine) as session:
        return session.exec(select(Subscriber.id).where(Subscriber.email == address)).one()


def leave(server, address: str) -> None:
    token = SIGNER.sign("reader", reader_id(server, address), int(time.time()) + 3600)
    assert httpx.post(f"{server.url}/unsubscribe/{token}", timeout=10).status_code == 200


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def test_a_reader_who_confirms_gets_one_welcome_that_says_what_when_and_where(server):
    answer = join(server, "ada@example.com")
    assert "You&#39;re subscribed" in answer.text or "You're subscribed" in answer.text
    message = server.mail_to("ada@example.com", "welcome")
    assert message["Subject"] == "Welcome to Weekly AI Tool Verdicts"
    text = " ".join(text_of(message).split())
    assert "When it arrives: Every Thursday at 07:30 (Europe/Berlin)." in text
    assert "What you get: The best of each week's AI tool comparisons" in text
    assert "New AI tools ship daily. We compare them before you waste an afternoon." in text
    utm = "utm_source=weekly-ai-tool-verdicts&utm_medium=email&utm_campaign=welcome"
    latest = f"{SITE}/issues/{week_slug()}?{utm}"
    assert latest in text and latest.replace("&", "&amp;") in message.get_body(("html",)).get_content()
    # the latest issue's web version, its preferences link and its List-Unsubscribe all work
    assert httpx.get(f"{server.url}/issues/{week_slug()}", timeout=10).status_code == 200
    preferences = link_in(message, "/preferences/")
    page = httpx.get(server.url + preferences, timeout=10)
    assert page.status_code == 200 and "ada@example.com" in page.text
    assert message["List-Unsubscribe"] == f"<{SITE}{link_in(message, '/unsubscribe/')}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # pressing the confirmation button again welcomes nobody twice
    assert "You were already in" in confirm(server, "ada@example.com").text
    assert welcomes(server, "ada@example.com") == 1
    ada = reader_id(server, "ada@example.com")
    with Session(server.engine) as session:
        events = session.exec(select(SubscriberEvent.kind).where(SubscriberEvent.subscriber_id == ada))
        kinds = list(events)
    assert kinds == ["signup_requested", "confirmed", "welcomed"]


def test_confirming_again_within_a_year_brings_no_second_welcome_but_after_a_year_one(server):
    join(server, "bea@example.com")
    assert welcomes(server, "bea@example.com") == 1
    leave(server, "bea@example.com")
    join(server, "bea@example.com", nth=2)
    assert welcomes(server, "bea@example.com", settle=1.0) == 1, "no second welcome within a year"
    bea = reader_id(server, "bea@example.com")
    with server.engine.begin() as connection:  # the store as it is a year and a day later
        connection.execute(
            update(WelcomeMail)
            .where(WelcomeMail.subscriber_id == bea)
            .values(sent_at=datetime.now(UTC) - timedelta(days=366))
        )
    leave(server, "bea@example.com")
    join(server, "bea@example.com", nth=3)
    server.mail_to("bea@example.com", "welcome", count=2)
    assert welcomes(server, "bea@example.com") == 2


def test_a_reader_who_comes_back_is_welcomed_with_the_categories_they_chose(server):
    """Readers the list owner adds confirmed nothing and get no welcome; one who chose categories,
    left and came back by confirming gets one naming them."""
    assert server.cli("subscribers", "add", "cat@example.com").returncode == 0
    token = SIGNER.sign("reader", reader_id(server, "cat@example.com"), int(time.time()) + 3600)
    form = {"action": "categories", "category": ["Voice & Audio", "Developer Tools"]}
    saved = httpx.post(f"{server.url}/preferences/{token}", data=form, timeout=10)
    assert saved.status_code == 303, saved.text
    assert welcomes(server, "cat@example.com", settle=0.2) == 0
    leave(server, "cat@example.com")
    join(server, "cat@example.com")
    message = server.mail_to("cat@example.com", "welcome")
    text = " ".join(text_of(message).split())
    assert "What you get: The best of each week's comparisons in Developer Tools and Voice & Audio" in text
    assert "Developer Tools and Voice &amp; Audio" in message.get_body(("html",)).get_content()


def test_a_failing_provider_never_fails_the_confirmation_and_the_retry_sends_the_welcome(server):
    welcome_dir, aside = server.outbox / "welcome", server.outbox / "welcome-aside"
    welcome_dir.rename(aside)
    welcome_dir.write_text("a file where the outbox wants a directory")  # the provider fails
    try:
        answer = join(server, "cy@example.com")
        assert "You&#39;re subscribed" in answer.text or "You're subscribed" in answer.text
        time.sleep(0.8)
    finally:
        welcome_dir.unlink()
        aside.rename(welcome_dir)
    assert welcomes(server, "cy@example.com", settle=0) == 0
    cy = reader_id(server, "cy@example.com")
    with Session(server.engine) as session:
        owed = session.get(WelcomeMail, cy)
        assert owed.due_at is not None and owed.sent_at is None and "welcome" in owed.last_error
        assert owed.claimed_until > datetime.now(UTC), "not before a pause"
    log = (server.directory / "serve.log").read_text()
    assert "could not send 1 welcome email(s)" in log
    # the scheduler's hourly retry, once the pause has passed, sends it; once
    settings = Settings(
        _env_file=None,
        database_url=database_url(server.directory),
        secret_key=TEST_KEY,
        outbox_dir=server.outbox,
        timezone="Europe/Berlin",
        send_cron="30 7 * * 4",
    )
    jobs.set_context(jobs.Context(settings, server.engine, threading.Event()))
    later = datetime.now(UTC) + timedelta(minutes=21)
    assert "welcome emails owed: 1 sent" in jobs.retry_job(later)
    assert "welcome emails owed" not in jobs.retry_job(later)
    message = server.mail_to("cy@example.com", "welcome")
    assert "Every Thursday at 07:30" in text_of(message)
    assert welcomes(server, "cy@example.com", settle=0) == 1


def test_the_welcome_is_off_with_newsletter_welcome_false(tmp_path):
    with running_server(tmp_path, welcome="false") as server:
        join(server, "dan@example.com")
        assert welcomes(server, "dan@example.com", settle=1.0) == 0
        engine = make_engine(database_url(tmp_path))
        with Session(engine) as session:
            assert session.exec(select(WelcomeMail)).all() == []
            assert session.exec(select(Subscriber.status)).all() == ["active"]
        engine.dispose()


def test_the_welcome_names_no_latest_issue_before_the_first(tmp_path):
    with running_server(tmp_path) as server:
        join(server, "eve@example.com")
        text = " ".join(text_of(server.mail_to("eve@example.com", "welcome")).split())
    assert "The latest issue: The first one is on its way to you." in text
    assert "/issues/" not in text
    assert "When it arrives: Every Monday at 09:00 (UTC)." in text
    assert not re.search(r"\{\{|\}\}|%%", text), "no template or marker left"


class HalfwayProvider:
    """A provider whose batch request fails after the first two messages went through (as a
    multi-request batch or the outbox's disk does): it raises with what it had sent."""

    name, max_batch, default_batch = "halfway", 10, 10

    def __init__(self):
        self.accepted: list[str] = []

    async def send_batch(self, messages):
        from newsletter.providers.base import ProviderError, SendResult

        error = ProviderError("the connection dropped after two messages")
        error.completed = {i: SendResult(m.message_id, True) for i, m in enumerate(messages[:2])}
        self.accepted += [m.to for m in messages[:2]]
        raise error

    async def aclose(self):
        return None


def test_welcomes_a_failed_batch_had_sent_are_recorded_as_sent_and_never_sent_again(settings, engine):
    from newsletter.subscriptions import add_active
    from newsletter.welcome import owe_welcome, send_owed_welcomes

    readers = ["one@example.com", "two@example.com", "three@example.com"]
    with Session(engine) as session:
        add_active(session, readers, source="test", key=TEST_KEY.encode())
        for subscriber in session.exec(select(Subscriber)):
            owe_welcome(session, subscriber.id)
        session.commit()
    provider = HalfwayProvider()
    done = send_owed_welcomes(engine, settings, lambda _settings: provider)
    assert done == {"sent": 2, "failed": 1}
    assert provider.accepted == readers[:2]
    with Session(engine) as session:
        rows = {s.email: w for s, w in session.exec(select(Subscriber, WelcomeMail).join(WelcomeMail))}
    assert [email for email, row in rows.items() if row.sent_at is not None] == readers[:2]
    assert rows["three@example.com"].due_at is not None and "dropped" in rows["three@example.com"].last_error
    later = datetime.now(UTC) + timedelta(minutes=21)
    again = send_owed_welcomes(engine, settings, lambda _settings: provider, later)
    assert again == {"sent": 1} and provider.accepted == readers, "the third alone goes again"
