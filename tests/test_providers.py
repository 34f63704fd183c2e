"""Each provider adapter and the delivery engine against the emulator, a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.delivery import SendAborted, Sender
from newsletter.editions import compose
from newsletter.ledger import counts, retry_failed
from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberEvent
from newsletter.providers import make_provider
from newsletter.samples import dated_into_week
from newsletter.subscriptions import add_active
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.emulator_server import running_emulator

PROVIDERS = ["postmark", "resend", "sendgrid", "mailgun"]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
READERS = [f"reader{n}@example.com" for n in range(45)]


@pytest.fixture(scope="module")
def emulator():
    with running_emulator("--seed", "11") as running:
        yield running


@pytest.fixture
def store(tmp_path, samples):
    """A store with the sample week composed and READERS active; returns (engine, issue id, path)."""
    url = database_url(tmp_path)
    engine = make_engine(url)
    create_schema(engine)
    plain = Settings(_env_file=None, database_url=url, secret_key=TEST_KEY, timezone="Europe/Berlin")
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples, NOW, plain.zone), plain.zone)
        add_active(session, READERS, source="test", key=TEST_KEY.encode())
        issue_id = compose(session, Week.parse("2026-W48"), plain).issue.id
    yield engine, issue_id, url
    engine.dispose()


def settings_for(emulator, provider: str, url: str, **extra) -> Settings:
    return Settings(
        _env_file=None,
        database_url=url,
        secret_key=TEST_KEY,
        timezone="Europe/Berlin",
        send_batch_size=extra.pop("send_batch_size", 7),
        send_concurrency=3,
        **emulator.provider_settings(provider) | extra,
    )


def send(engine, settings, issue_id):
    async def go():
        provider = make_provider(settings)
        try:
            return await Sender(engine, settings, provider).send(issue_id)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def exactly_once(emulator, addresses) -> bool:
    per = emulator.counts()
    return {a: per.get(a, 0) for a in addresses} == dict.fromkeys(addresses, 1) and set(per) == set(addresses)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_reader_gets_the_issue_once_with_their_own_links(emulator, store, provider):
    engine, issue_id, url = store
    emulator.reset()
    report = send(engine, settings_for(emulator, provider, url), issue_id)
    assert report.sent == len(READERS)
    assert exactly_once(emulator, READERS)

    received = emulator.messages(to=READERS[3], bodies=True)[0]
    with Session(engine) as session:
        delivery = session.exec(select(Delivery).join(Subscriber).where(Subscriber.email == READERS[3])).one()
        assert counts(session, issue_id) == {DeliveryStatus.SENT: len(READERS)}
    assert received["metadata"]["delivery"] == str(delivery.id)
    assert received["subject"].startswith("Claude Haiku Open Weights vs Gemini 2.5 Flash Lite")
    unsubscribe = received["headers"]["List-Unsubscribe"]
    assert unsubscribe.startswith("<https://verdicts.example.com/unsubscribe/") and unsubscribe.endswith(">")
    assert received["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.strip("<>") in received["html"] and unsubscribe.strip("<>") in received["text"]
    assert (
        READERS[3] in received["text"]
        and "%recipient" not in received["html"]
        and "-nl" not in received["html"]
    )
    assert delivery.provider == provider and delivery.provider_message_id


def test_substituting_providers_deliver_the_same_bodies_as_per_message_providers(emulator, store, tmp_path):
    engine, issue_id, url = store
    emulator.reset()
    send(engine, settings_for(emulator, "postmark", url), issue_id)
    for provider in ("sendgrid", "mailgun"):
        with session_scope(engine) as session:
            session.exec(Delivery.__table__.delete())
            from newsletter.models import Issue

            session.get(Issue, issue_id).status = "approved"
        send(engine, settings_for(emulator, provider, url), issue_id)
    for address in READERS[:5]:
        bodies = {
            m["provider"]: (m["html_fingerprint"], m["text_fingerprint"])
            for m in emulator.messages(to=address)
        }
        assert bodies["sendgrid"] == bodies["postmark"] == bodies["mailgun"], address


@pytest.mark.parametrize("provider", ["postmark", "resend", "mailgun"])
def test_retryable_and_ambiguous_faults_still_deliver_exactly_once(emulator, store, provider):
    """429 and 500 before anything is accepted, and connections dropped after the provider accepted."""
    engine, issue_id, url = store
    emulator.reset()
    emulator.faults(fail_rate=0.3, drop_rate=0.3, retry_after=0.05, seed=5)
    report = send(
        engine, settings_for(emulator, provider, url, send_max_attempts=12, send_batch_size=3), issue_id
    )
    emulator.faults()
    requests = emulator.requests()
    assert any("injected" in key for key in requests) and any("dropped" in key for key in requests), requests
    assert report.sent == len(READERS) and report.retries > 0 and report.reconciled > 0
    assert exactly_once(emulator, READERS)


def test_sendgrid_without_reconciliation_follows_the_unknown_outcome_setting(emulator, store):
    engine, issue_id, url = store
    emulator.reset()
    emulator.faults(drop_rate=0.3)
    report = send(engine, settings_for(emulator, "sendgrid", url, unknown_outcome="assume-sent"), issue_id)
    emulator.faults()
    assert report.sent == len(READERS)
    assert exactly_once(emulator, READERS), (
        "the emulator accepted the dropped requests: assumed sent is right"
    )
    with Session(engine) as session:
        notes = session.exec(select(Delivery.last_error).where(Delivery.last_error.is_not(None))).all()
    assert notes and set(notes) == {"outcome unknown; assumed sent"}


@pytest.mark.parametrize(
    ("provider", "address"), [("postmark", "inactive1@example.com"), ("sendgrid", "invalid1@example.com")]
)
def test_a_permanent_error_suppresses_that_reader_only_and_is_never_retried(
    emulator, store, provider, address
):
    engine, issue_id, url = store
    with session_scope(engine) as session:
        add_active(session, [address], source="test", key=TEST_KEY.encode())
    emulator.reset()
    report = send(engine, settings_for(emulator, provider, url), issue_id)
    assert report.sent == len(READERS)
    assert report.suppressed == {"permanent error for the address": 1}
    assert address not in emulator.counts()
    with Session(engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == address)).one()
        assert reader.status == "bounced"
        assert [
            e.kind
            for e in session.exec(select(SubscriberEvent).where(SubscriberEvent.subscriber_id == reader.id))
        ][-1] == "bounced"
    assert send(engine, settings_for(emulator, provider, url), issue_id).sent == 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_bad_key_stops_the_send_at_once_keeps_the_queue_and_says_why(emulator, store, provider):
    engine, issue_id, url = store
    emulator.reset()
    wrong = {
        "postmark_server_token": "nope",
        "resend_api_key": "nope",
        "sendgrid_api_key": "nope",
        "mailgun_api_key": "nope",
    }
    with pytest.raises(SendAborted, match=r"refused credentials \((401|403)\)"):
        send(engine, settings_for(emulator, provider, url, **wrong), issue_id)
    assert emulator.counts() == {}
    with Session(engine) as session:
        assert counts(session, issue_id) == {DeliveryStatus.QUEUED: len(READERS)}
    assert send(engine, settings_for(emulator, provider, url), issue_id).sent == len(READERS)
    assert exactly_once(emulator, READERS)


def test_retries_give_up_after_the_limit_and_stop_the_send_with_the_queue_kept(emulator, store):
    """A provider that answers 500 to every try is down: after the last try the send stops (as for a
    fatal error), every reader still queued; a rerun once it is back sends each exactly once."""
    engine, issue_id, url = store
    emulator.reset()
    emulator.faults(fail_rate=1.0, fail_statuses=[500], retry_after=0.01)
    with pytest.raises(SendAborted, match="server error 500"):
        send(engine, settings_for(emulator, "postmark", url, send_max_attempts=2), issue_id)
    emulator.faults()
    with session_scope(engine) as session:
        assert counts(session, issue_id) == {DeliveryStatus.QUEUED: len(READERS)}
        assert retry_failed(session, issue_id) == 0
    assert send(engine, settings_for(emulator, "postmark", url), issue_id).sent == len(READERS)
    assert exactly_once(emulator, READERS)


def test_the_rate_limit_holds_messages_per_second(emulator, store):
    engine, issue_id, url = store
    emulator.reset()
    started = time.monotonic()
    send(engine, settings_for(emulator, "postmark", url, send_rate=30, send_batch_size=5), issue_id)
    elapsed = time.monotonic() - started
    # 45 messages at 30/s with a bucket of 30: at least (45 - 30) / 30 = 0.5 s.
    assert elapsed >= 0.5
    assert exactly_once(emulator, READERS)


def test_a_batch_split_into_several_requests_never_resends_the_parts_that_went_through(
    emulator, store, monkeypatch
):
    """Postmark splits a batch at 50 MB; here at ~3 messages. A later request failing must not make
    the engine send the earlier, accepted ones again."""
    import newsletter.providers.postmark as postmark

    monkeypatch.setattr(postmark, "MAX_REQUEST_BYTES", 330_000)
    engine, issue_id, url = store
    emulator.reset()
    emulator.faults(fail_rate=0.35, retry_after=0.02, seed=3)
    report = send(
        engine, settings_for(emulator, "postmark", url, send_batch_size=15, send_max_attempts=15), issue_id
    )
    emulator.faults()
    assert report.sent == len(READERS) and report.retries > 0
    assert exactly_once(emulator, READERS)
