"""Provider events posted by the emulator to the real app: verified, stored once, acted on."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import ProviderEvent, Subscriber, SubscriberEvent
from tests.commands import newsletter
from tests.databases import database_url
from tests.emulator_server import running_emulator
from tests.web_server import running_server

PROVIDERS = ["postmark", "resend", "sendgrid", "mailgun"]
READERS = ["ann@example.com", "ben@example.com", "cat@example.com", "dan@example.com", "eve@example.com"]


@pytest.fixture(scope="module")
def emulator():
    with running_emulator() as running:
        yield running


@pytest.fixture(scope="module", params=PROVIDERS)
def sent(request, emulator, tmp_path_factory):
    """An app configured with the emulator's webhook secrets, and an issue sent through `provider`."""
    provider = request.param
    keys = emulator.get("webhook-keys")
    secrets = {
        "postmark_webhook_user": keys["postmark_user"],
        "postmark_webhook_password": keys["postmark_password"],
        "resend_webhook_secret": keys["resend_secret"],
        "sendgrid_webhook_public_key": keys["sendgrid_public_key"],
        "mailgun_webhook_signing_key": keys["mailgun_signing_key"],
    }
    directory = tmp_path_factory.mktemp(f"webhooks-{provider}")
    with running_server(directory, **secrets) as server:
        env = server.env | emulator.provider_env(provider) | {"COLUMNS": "200"}
        for args in (["subscribers", "add", *READERS], ["issue", "compose"], ["issue", "send"]):
            result = newsletter(directory, env, *args)
            assert result.returncode == 0, result.stderr
        server.env = env
        yield provider, server


def post(emulator, server, provider, events, signature="good"):
    answer = emulator.post(
        "webhooks",
        {
            "url": f"{server.url}/webhooks/{provider}",
            "provider": provider,
            "events": events,
            "signature": signature,
        },
    )
    return answer["answers"]


def reader(server, address) -> Subscriber:
    with Session(make_engine(database_url(server.directory))) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == address)).one()


def stored_events(server) -> list[ProviderEvent]:
    with Session(make_engine(database_url(server.directory))) as session:
        return list(session.exec(select(ProviderEvent)))


def test_a_hard_bounce_is_stored_tied_to_its_delivery_and_suppresses_the_reader(emulator, sent):
    provider, server = sent
    (answer,) = post(emulator, server, provider, [{"kind": "bounced", "to": READERS[0], "id": "101"}])
    assert answer["status"] == 200, answer
    assert '"stored":1' in answer["body"] and '"suppressed":1' in answer["body"]
    bounced = reader(server, READERS[0])
    assert bounced.status == "bounced"
    event = next(e for e in stored_events(server) if e.kind == "bounced")
    assert event.subscriber_id == bounced.id and event.delivery_id is not None and event.issue_id is not None
    with Session(make_engine(database_url(server.directory))) as session:
        trail = session.exec(select(SubscriberEvent).where(SubscriberEvent.subscriber_id == bounced.id)).all()
    assert trail[-1].kind == "bounced" and trail[-1].source == f"{provider} webhook"


def test_a_complaint_suppresses_and_a_soft_bounce_does_not(emulator, sent):
    provider, server = sent
    post(emulator, server, provider, [{"kind": "complained", "to": READERS[1], "id": "201"}])
    post(emulator, server, provider, [{"kind": "soft_bounced", "to": READERS[2], "id": "202"}])
    assert reader(server, READERS[1]).status == "complained"
    assert reader(server, READERS[2]).status == "active"
    assert {"complained", "soft_bounced"} <= {e.kind for e in stored_events(server)}


def test_a_replayed_event_is_stored_once_and_acted_on_once(emulator, sent):
    provider, server = sent
    before = len(stored_events(server))
    first = post(emulator, server, provider, [{"kind": "delivered", "to": READERS[3], "id": "301"}])
    again = post(emulator, server, provider, [{"kind": "delivered", "to": READERS[3], "id": "301"}])
    assert first[0]["status"] == again[0]["status"] == 200
    assert '"stored":1' in first[0]["body"] and '"duplicates":1' in again[0]["body"]
    assert len(stored_events(server)) == before + 1


@pytest.mark.parametrize("signature", ["bad", "none"])
def test_unsigned_or_badly_signed_requests_get_401_and_change_nothing(emulator, sent, signature):
    provider, server = sent
    before = len(stored_events(server))
    (answer,) = post(
        emulator,
        server,
        provider,
        [{"kind": "bounced", "to": READERS[4], "id": f"40{signature}"}],
        signature=signature,
    )
    assert answer["status"] == 401, answer
    assert "webhook refused" in answer["body"]
    assert len(stored_events(server)) == before
    assert reader(server, READERS[4]).status == "active"


def test_issue_status_shows_delivered_bounced_and_complained(emulator, sent):
    provider, server = sent
    post(emulator, server, provider, [{"kind": "delivered", "to": READERS[4], "id": "501"}])
    result = subprocess.run(
        [sys.executable, "-m", "newsletter", "issue", "status"],
        cwd=server.directory,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "delivered 2" in result.stdout and "bounced 1" in result.stdout and "complained 1" in result.stdout


def test_an_unknown_provider_and_garbage_bodies_get_clear_4xx(sent):
    provider, server = sent
    assert httpx.post(f"{server.url}/webhooks/sparkpost", content=b"{}").status_code == 404
    assert httpx.post(
        f"{server.url}/webhooks/{provider}", content=b"not json", headers={"content-type": "application/json"}
    ).status_code in (400, 401)


def test_the_app_refuses_webhooks_of_a_provider_it_has_no_secret_for(tmp_path):
    with running_server(tmp_path) as server:
        answer = httpx.post(f"{server.url}/webhooks/resend", content=b"{}")
        assert answer.status_code == 401 and "RESEND_WEBHOOK_SECRET" in answer.text
    assert not os.environ.get("RESEND_WEBHOOK_SECRET")
