"""Outgoing webhooks end to end: a real `newsletter serve`, the provider emulator, real `newsletter`
commands, and a real receiver on 127.0.0.1 that verifies every delivery with `standardwebhooks`.
Readers join, confirm, vote and leave through the web pages, an issue is sent through the emulator,
the provider reports a bounce; the sender is SIGKILLed mid-request and loses nothing; the scheduler
and a sender worker deliver on their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import Session, func, select

from newsletter.db import make_engine
from newsletter.models import Delivery, Subscriber, WebhookMessage
from tests.emulator_server import running_emulator
from tests.test_web import csrf, reader_token
from tests.web_server import link_in, running_server
from tests.webhook_receiver import Receiver


@pytest.fixture(scope="module")
def emulator():
    with running_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def receiver():
    running = Receiver().start()
    yield running
    running.release.set()
    running.stop()


@pytest.fixture(scope="module")
def server(emulator, receiver, tmp_path_factory):
    keys = emulator.get("webhook-keys")
    directory = tmp_path_factory.mktemp("outgoing")
    with running_server(
        directory,
        postmark_webhook_user=keys["postmark_user"],
        postmark_webhook_password=keys["postmark_password"],
    ) as running:
        running.env = running.env | emulator.provider_env("postmark") | {"COLUMNS": "200", "NO_COLOR": "1"}
        added = running.cli("webhooks", "add", receiver.url, "--events", "all")
        assert added.returncode == 0, added.stderr
        lines = added.stdout.splitlines()
        receiver.secret = next(line for line in lines if line.startswith("whsec_"))
        assert "receiver-query-token" not in added.stdout, "the URL's query is not echoed"
        yield running


@pytest.fixture
def http(server):
    import httpx

    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as client:
        yield client


def engine_of(server):
    return make_engine(server.env["NEWSLETTER_DATABASE_URL"])


def reader_id(server, email: str) -> int:
    with Session(engine_of(server)) as session:
        return session.exec(select(Subscriber.id).where(Subscriber.email == email)).one()


def deliver(server) -> subprocess.CompletedProcess[str]:
    result = server.cli("webhooks", "deliver")
    assert "Traceback" not in result.stderr
    return result


def about(receiver: Receiver, subscriber_id: int) -> list:
    return [r for r in receiver.received if r.body["data"].get("subscriber", {}).get("id") == subscriber_id]


def test_web_signup_confirm_vote_and_one_click_leave_reach_the_receiver_in_order(server, receiver, http):
    assert (
        http.post("/subscribe", data={"email": "web.reader@example.com", "csrf": csrf(http)}).status_code
        == 303
    )
    assert http.post(link_in(server.mail_to("web.reader@example.com"), "/confirm/")).status_code == 200
    reader = reader_id(server, "web.reader@example.com")
    token = reader_token(reader)
    assert http.post(f"/vote/{token}/cursor-vs-windsurf/windsurf/ship").status_code == 200
    one_click = http.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200

    result = deliver(server)
    assert result.returncode == 0, result.stderr
    assert "4 delivered, 0 failed" in result.stdout
    mine = about(receiver, reader)
    assert [r.type for r in mine] == [
        "subscriber.pending",
        "subscriber.confirmed",
        "vote.recorded",
        "subscriber.unsubscribed",
    ]
    assert receiver.rejected == []
    vote = mine[2].body["data"]
    assert (vote["comparison"], vote["tool"], vote["verdict"]) == ("cursor-vs-windsurf", "windsurf", "ship")
    assert mine[3].body["data"]["source"] == "one-click"
    assert token not in json.dumps([r.body for r in mine]), "no reader token in any payload"


def test_a_send_tells_issue_sent_with_its_summary_and_a_provider_bounce_tells_subscriber_bounced(
    server, receiver, emulator
):
    readers = ["send.one@example.com", "send.two@example.com", "send.three@example.com"]
    for args in (["subscribers", "add", *readers], ["issue", "compose"], ["issue", "send"]):
        result = server.cli(*args)
        assert result.returncode == 0, result.stderr
    assert deliver(server).returncode == 0
    (sent,) = [r for r in receiver.received if r.type == "issue.sent"]
    with Session(engine_of(server)) as session:
        delivered = session.exec(select(func.count()).where(Delivery.status == "sent")).one()
    summary = sent.body["data"]["summary"]
    assert summary["sent"] == delivered >= 3 and summary["failed"] == 0
    issue = sent.body["data"]["issue"]
    assert issue["url"] == f"https://verdicts.example.com/issues/{issue['slug']}" and issue["subject"]
    assert sent.body["data"]["again"] is False

    answer = emulator.post(
        "webhooks",
        {
            "url": f"{server.url}/webhooks/postmark",
            "provider": "postmark",
            "events": [{"kind": "bounced", "to": readers[0], "id": "9001"}],
            "signature": "good",
        },
    )["answers"]
    assert answer[0]["status"] == 200, answer
    assert deliver(server).returncode == 0
    bounced = about(receiver, reader_id(server, readers[0]))[-1]
    assert bounced.type == "subscriber.bounced"
    assert bounced.body["data"]["source"] == "postmark webhook"
    assert bounced.body["data"]["issue"] == issue["slug"] and bounced.body["data"]["reason"]


def test_erasing_from_the_preferences_page_tells_subscriber_erased_with_the_id_alone(server, receiver, http):
    assert server.cli("subscribers", "add", "forget.me@example.com").returncode == 0
    reader = reader_id(server, "forget.me@example.com")
    erased = http.post(f"/preferences/{reader_token(reader)}/erase", data={"confirm": "yes"})
    assert erased.status_code == 200
    assert deliver(server).returncode == 0
    mine = about(receiver, reader)
    assert [r.type for r in mine] == ["subscriber.confirmed", "subscriber.erased"]
    assert mine[-1].body["data"]["subscriber"] == {"id": reader, "status": "erased"}
    with Session(engine_of(server)) as session:
        stored = " ".join(session.exec(select(WebhookMessage.payload)).all())
    assert "forget.me@example.com" not in stored


def test_list_test_and_refusals_speak_one_line_and_never_show_the_secret(server, receiver):
    listed = server.cli("webhooks", "list")
    assert listed.returncode == 0, listed.stderr
    assert "127.0.0.1" in listed.stdout and " ok " in listed.stdout
    assert receiver.secret not in listed.stdout + listed.stderr
    assert "receiver-query-token" not in listed.stdout
    as_json = json.loads(server.cli("webhooks", "list", "--json").stdout)
    assert as_json[0]["state"] == "ok" and as_json[0]["events"] == "all" and as_json[0]["pending"] == 0
    assert "secret" not in json.dumps(as_json)

    tested = server.cli("webhooks", "test", "1")
    assert tested.returncode == 0 and "answered 200" in tested.stdout, tested.stderr
    assert receiver.types()[-1] == "webhook.test"

    for args, message in [
        (("webhooks", "test", "99"), "no webhook endpoint 99"),
        (("webhooks", "enable", "99"), "no webhook endpoint 99"),
        (
            ("webhooks", "add", "https://u:p@example.com/h", "--events", "all"),
            "URL: the URL holds credentials",
        ),
        (
            ("webhooks", "add", "https://example.com/h", "--events", "reader.joined"),
            "--events: unknown event",
        ),
        (("webhooks", "add", "gopher://example.com/h", "--events", "all"), "must start with https://"),
    ]:
        refused = server.cli(*args)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_a_sender_killed_mid_request_loses_nothing_and_the_rerun_repeats_the_same_webhook_id(
    server, receiver
):
    assert server.cli("subscribers", "add", "killed.mid@example.com").returncode == 0
    reader = reader_id(server, "killed.mid@example.com")
    receiver.stalled.clear()
    receiver.release.clear()
    receiver.mode = "stall"
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "webhooks", "deliver"],
        cwd=server.directory,
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert receiver.stalled.wait(30), "the request never arrived"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        receiver.mode = "ok"
        receiver.release.set()  # the receiver finishes its work: the sender never learns it
    with Session(engine_of(server)) as session:
        left = session.exec(
            select(WebhookMessage).where(WebhookMessage.subject == f"subscriber:{reader}")
        ).one()
    assert left.status == "pending", "the kill came between the claim's commit and the answer"
    rerun = deliver(server)
    assert rerun.returncode == 0, rerun.stderr
    mine = about(receiver, reader)
    assert [r.type for r in mine] == ["subscriber.confirmed", "subscriber.confirmed"]
    assert mine[0].msg_id == mine[1].msg_id == left.msg_id, "a duplicate carries the same webhook-id"
    with Session(engine_of(server)) as session:
        assert session.get(WebhookMessage, left.id).status == "delivered"


@pytest.mark.parametrize("command", ["scheduler", "worker"])
def test_the_scheduler_and_a_sender_worker_deliver_every_few_seconds(server, receiver, command):
    env = server.env | {"NEWSLETTER_WEBHOOK_INTERVAL_SECONDS": "1"}
    log_path = server.directory / f"{command}-webhooks.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", command],
            cwd=server.directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            time.sleep(2)
            address = f"{command}.reader@example.com"
            assert server.cli("subscribers", "add", address).returncode == 0
            reader = reader_id(server, address)
            deadline = time.monotonic() + 20
            while not about(receiver, reader) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [r.type for r in about(receiver, reader)] == ["subscriber.confirmed"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
    text = log_path.read_text()
    assert "Traceback" not in text and "webhooks: 1 delivered" in text
    assert text.count("webhooks_job") <= 1, "the every-second job does not flood the log (one line: added)"
