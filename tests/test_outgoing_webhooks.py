"""Outgoing webhooks in process: the outbox is written with the change it reports (and not without
it), a real receiver on 127.0.0.1 verifies every delivery with `standardwebhooks`, retries follow
the schedule (time-machine moves the clock), an endpoint failing for a day is disabled, and two
deliverers at once deliver every event exactly once, in order per reader."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func
from sqlmodel import Session, select

from newsletter.db import session_scope
from newsletter.models import Subscriber, WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow
from newsletter.outgoing_webhooks import endpoints, events
from newsletter.outgoing_webhooks.sender import RETRY_DELAYS, deliver_due, prune, send_test
from newsletter.outgoing_webhooks.signing import unseal
from newsletter.subscriber_files import import_csv
from newsletter.subscriptions import add_active, confirm, erase, request_signup, unsubscribe
from tests.conftest import TEST_KEY
from tests.webhook_receiver import Receiver

KEY = TEST_KEY.encode()


@pytest.fixture
def receiver():
    running = Receiver().start()
    yield running
    running.release.set()
    running.stop()


def add_endpoint(engine, receiver: Receiver, event_names: str = "all") -> int:
    with session_scope(engine) as session:
        endpoint, secret = endpoints.add(session, receiver.url, event_names, key=KEY)
    receiver.secret = secret
    return endpoint.id


def signup(engine, email: str) -> int:
    with session_scope(engine) as session:
        result = request_signup(session, email, source="web", client="203.0.113.9", per_address=(50, 3600))
    return result.subscriber_id


def confirm_reader(engine, subscriber_id: int) -> None:
    with session_scope(engine) as session:
        assert (
            confirm(session, subscriber_id, utcnow() + timedelta(seconds=1), client=None, key=KEY) == "done"
        )


def leave(engine, subscriber_id: int) -> None:
    with session_scope(engine) as session:
        assert unsubscribe(session, subscriber_id, source="unsubscribe page", client=None) == "done"


def messages(engine) -> list[WebhookMessage]:
    with Session(engine) as session:
        return list(session.exec(select(WebhookMessage).order_by(WebhookMessage.id)))


def per_reader(receiver: Receiver) -> dict[int, list[str]]:
    seen: dict[int, list[str]] = {}
    for item in receiver.received:
        who = item.body["data"]["subscriber"]["id"]
        seen.setdefault(who, []).append(item.type)
    return seen


def test_join_confirm_leave_arrive_verified_in_order_with_the_readers_data(engine, settings, receiver):
    add_endpoint(engine, receiver)
    reader = signup(engine, "Ada@Example.com")
    confirm_reader(engine, reader)
    leave(engine, reader)

    report = deliver_due(engine, settings)
    assert (report.delivered, report.failed) == (3, 0)
    assert receiver.rejected == [], "every delivery verifies with standardwebhooks"
    assert receiver.types() == [events.PENDING, events.CONFIRMED, events.UNSUBSCRIBED]
    first, second, third = receiver.received
    assert first.body["data"]["subscriber"] == {
        "id": reader,
        "email": "ada@example.com",
        "status": "pending",
        "source": "web",
        "created_at": first.body["data"]["subscriber"]["created_at"],
        "confirmed_at": None,
    }
    assert second.body["data"]["subscriber"]["status"] == "active"
    assert second.body["data"]["source"] == "confirmation link"
    assert third.body["data"]["subscriber"]["status"] == "unsubscribed"
    assert len({item.msg_id for item in receiver.received}) == 3
    assert all(item.headers["webhook-signature"].startswith("v1,") for item in receiver.received)
    assert {m.status for m in messages(engine)} == {"delivered"}
    assert deliver_due(engine, settings).attempted == 0, "nothing is delivered twice"
    with Session(engine) as session:
        attempts = session.exec(select(WebhookAttempt)).all()
    assert [a.status_code for a in attempts] == [200, 200, 200]
    assert all(a.duration_ms >= 0 and a.response == '{"ok": true}' for a in attempts)


def test_a_change_that_rolls_back_writes_no_webhook_and_one_that_commits_writes_one(engine, receiver):
    add_endpoint(engine, receiver)
    with session_scope(engine) as session:
        add_active(session, ["grace@example.com"], source="cli", key=KEY)
        reader = session.exec(select(Subscriber.id)).one()
    assert [m.type for m in messages(engine)] == [events.CONFIRMED]

    def change_then_fail() -> None:
        with session_scope(engine) as session:
            unsubscribe(session, reader, source="test", client=None)
            session.flush()
            assert session.exec(select(func.count()).select_from(WebhookMessage)).one() == 2
            raise RuntimeError("the request failed after the change")

    with pytest.raises(RuntimeError):
        change_then_fail()
    assert [m.type for m in messages(engine)] == [events.CONFIRMED], "the rolled-back change wrote nothing"
    with Session(engine) as session:
        assert session.get(Subscriber, reader).status == "active"


def test_without_endpoints_nothing_is_written_and_an_endpoint_gets_only_its_events(
    engine, settings, receiver
):
    reader = signup(engine, "early@example.com")
    assert messages(engine) == []
    add_endpoint(engine, receiver, "subscriber.unsubscribed")
    confirm_reader(engine, reader)
    leave(engine, reader)
    assert [m.type for m in messages(engine)] == [events.UNSUBSCRIBED]
    deliver_due(engine, settings)
    assert receiver.types() == [events.UNSUBSCRIBED]


def test_a_csv_import_writes_one_event_per_new_reader_in_the_same_transaction(
    engine, settings, receiver, tmp_path
):
    add_endpoint(engine, receiver, "subscriber.pending,subscriber.confirmed")
    active = tmp_path / "active.csv"
    active.write_text("email\none@example.com\ntwo@example.com\n")
    pending = tmp_path / "pending.csv"
    pending.write_text("email\nthree@example.com\n")
    with session_scope(engine) as session:
        import_csv(session, active, key=KEY, confirm=False, skip_invalid=False)
    with session_scope(engine) as session:
        import_csv(session, pending, key=KEY, confirm=True, skip_invalid=False)
    deliver_due(engine, settings)
    got = {item.body["data"]["subscriber"]["email"]: item.type for item in receiver.received}
    assert got == {
        "one@example.com": events.CONFIRMED,
        "two@example.com": events.CONFIRMED,
        "three@example.com": events.PENDING,
    }
    assert {item.body["data"]["source"] for item in receiver.received} == {"import:csv"}


def test_an_export_that_says_a_reader_left_tells_receivers_they_are_unsubscribed(
    engine, settings, receiver, tmp_path
):
    with session_scope(engine) as session:  # vouched for by the owner, never confirmed by their own link
        add_active(session, ["u1@example.com"], source="cli", key=KEY)
        reader = session.exec(select(Subscriber.id).where(Subscriber.email == "u1@example.com")).one()
    add_endpoint(engine, receiver, "subscriber.unsubscribed")
    export = tmp_path / "unsubscribed_members_export_1.csv"
    export.write_text(
        "Email Address,MEMBER_RATING,OPTIN_TIME,CONFIRM_TIME,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_REASON\n"
        "u1@example.com,1,2018-02-12 10:54:27,2018-02-12 10:54:27,2025-07-23 12:19:27,Weekly,spam\n"
    )
    with session_scope(engine) as session:
        import_csv(session, export, key=KEY, confirm=False, skip_invalid=False, wanted="mailchimp")
    deliver_due(engine, settings)
    assert [(item.type, item.body["data"]["subscriber"]["id"]) for item in receiver.received] == [
        (events.UNSUBSCRIBED, reader)
    ]


def test_erasure_sends_the_id_alone_and_blanks_the_address_in_every_stored_message(
    engine, settings, receiver
):
    add_endpoint(engine, receiver)
    reader = signup(engine, "erase.me@example.com")
    confirm_reader(engine, reader)
    deliver_due(engine, settings)
    with session_scope(engine) as session:
        erase(session, session.get(Subscriber, reader), key=KEY)
    deliver_due(engine, settings)
    assert receiver.types() == [events.PENDING, events.CONFIRMED, events.ERASED]
    assert receiver.received[-1].body["data"]["subscriber"] == {"id": reader, "status": "erased"}
    stored = " ".join(m.payload for m in messages(engine))
    assert "erase.me@example.com" not in stored, "no stored message keeps the erased address"


def test_the_secret_is_stored_sealed_and_signs_only_with_the_key_that_sealed_it(engine, settings, receiver):
    endpoint_id = add_endpoint(engine, receiver)
    with Session(engine) as session:
        stored = session.get(WebhookEndpoint, endpoint_id).secret
    assert receiver.secret.startswith("whsec_") and receiver.secret not in stored
    assert unseal(stored, KEY) == receiver.secret
    other = settings.model_copy(update={"secret_key": "another-key-" + "x" * 40})
    outcome = send_test(engine, other, endpoint_id)
    assert not outcome.ok and "NEWSLETTER_SECRET_KEY" in outcome.error and receiver.requests == 0
    outcome = send_test(engine, settings, endpoint_id)
    assert outcome.ok and receiver.types() == [events.TEST]
    with session_scope(engine) as session:
        new_secret = endpoints.rotate(session, endpoint_id, key=KEY)
    assert send_test(engine, settings, endpoint_id).status_code == 400, "the receiver still has the old one"
    receiver.secret = new_secret
    assert send_test(engine, settings, endpoint_id).ok


def test_a_receiver_down_for_hours_then_up_gets_every_event_once_in_order_per_reader(
    engine, settings, receiver
):
    add_endpoint(engine, receiver)
    readers = [signup(engine, f"reader{n}@example.com") for n in range(3)]
    for reader in readers:
        confirm_reader(engine, reader)
    leave(engine, readers[1])
    receiver.mode = "503"
    with time_machine.travel(utcnow(), tick=True) as clock:
        report = deliver_due(engine, settings)
        assert (report.delivered, report.failed) == (0, 3), "each reader's first event, none behind it"
        clock.shift(timedelta(seconds=10))
        report = deliver_due(engine, settings)
        assert (report.delivered, report.failed) == (0, 1), "a failing endpoint is probed with one message"
        receiver.stop()  # now it refuses connections
        for _ in range(12):  # three hours of rounds, every retry due
            clock.shift(timedelta(minutes=15))
            report = deliver_due(engine, settings)
            assert report.delivered == 0 and report.failed <= 1
        assert all(m.status == "pending" for m in messages(engine))
        receiver.mode = "ok"
        receiver.start()
        clock.shift(timedelta(hours=3))
        while deliver_due(engine, settings).attempted:
            pass
    assert receiver.rejected == []
    assert len(receiver.received) == 7
    assert len({item.msg_id for item in receiver.received}) == 7, "every event exactly once"
    assert per_reader(receiver) == {
        readers[0]: [events.PENDING, events.CONFIRMED],
        readers[1]: [events.PENDING, events.CONFIRMED, events.UNSUBSCRIBED],
        readers[2]: [events.PENDING, events.CONFIRMED],
    }
    with Session(engine) as session:
        failures = sum(1 for code in session.exec(select(WebhookAttempt.status_code)) if code != 200)
        endpoint = session.exec(select(WebhookEndpoint)).one()
    assert 4 <= failures <= 17, "down, the endpoint got a probe per round, not its whole queue each time"
    assert endpoint.enabled and endpoint.failing_since is None and endpoint.last_success_at is not None


def test_an_endpoint_failing_for_a_day_is_disabled_with_a_warning_and_enabling_it_delivers_the_rest(
    engine, settings, receiver, caplog
):
    endpoint_id = add_endpoint(engine, receiver)
    reader = signup(engine, "patient@example.com")
    receiver.mode = "503"
    with time_machine.travel(utcnow(), tick=True) as clock, caplog.at_level(logging.WARNING):
        deliver_due(engine, settings)
        disabled_after = None
        for round_ in range(1, 6):
            clock.shift(timedelta(hours=6))
            if deliver_due(engine, settings).disabled:
                disabled_after = disabled_after or round_ * 6
        assert disabled_after == 24, "disabled once it had failed for a day, not before"
        assert "DISABLED" in caplog.text and "?…" in caplog.text
        assert "receiver-query-token" not in caplog.text, "a URL's query is never logged"
        confirm_reader(engine, reader)  # events keep queuing while it is disabled
        clock.shift(timedelta(days=2))
        assert deliver_due(engine, settings).attempted == 0
        with Session(engine) as session:
            (health,) = endpoints.endpoint_health(session)
        assert health.state == "disabled" and "without a success" in health.disabled_reason
        assert health.pending == 2
        receiver.mode = "ok"
        with session_scope(engine) as session:
            assert endpoints.enable(session, endpoint_id) == 2
        deliver_due(engine, settings)
        deliver_due(engine, settings)
    assert receiver.types() == [events.PENDING, events.CONFIRMED]


def test_410_gone_disables_the_endpoint_at_once(engine, settings, receiver):
    add_endpoint(engine, receiver)
    signup(engine, "gone@example.com")
    receiver.mode = "410"
    report = deliver_due(engine, settings)
    assert report.disabled and report.failed == 1
    with Session(engine) as session:
        assert "410 Gone" in endpoints.endpoint_health(session)[0].disabled_reason


def test_a_message_that_keeps_failing_is_given_up_after_three_days_and_the_next_one_flows(
    engine, settings, receiver
):
    settings = settings.model_copy(update={"webhook_disable_hours": 24 * 30})
    add_endpoint(engine, receiver)
    reader = signup(engine, "stubborn@example.com")
    receiver.mode = "503"
    with time_machine.travel(utcnow(), tick=True) as clock:
        deliver_due(engine, settings)
        confirm_reader(engine, reader)  # queued behind the failing one
        hours = 0.0
        while messages(engine)[0].status == "pending":
            clock.shift(timedelta(hours=2))
            hours += 2
            report = deliver_due(engine, settings)
            assert report.delivered == 0
            assert hours < 130
        first = messages(engine)[0]
        assert first.status == "failed" and first.attempts == len(RETRY_DELAYS) + 1
        # 3 days 3 hours of delays (tried every 2 h here, so the first few count 2 h each), ±20 % jitter
        assert 60 <= hours <= 104, f"given up after {hours} h"
        receiver.mode = "ok"
        clock.shift(timedelta(days=1))
        deliver_due(engine, settings)
    assert receiver.types() == [events.CONFIRMED]
    with Session(engine) as session:
        assert endpoints.endpoint_health(session)[0].failed == 1
    with time_machine.travel(utcnow() + timedelta(days=settings.webhook_retention_days + 1)):
        assert prune(engine, settings) == (2, len(RETRY_DELAYS) + 2)
    assert messages(engine) == []


def test_two_deliverers_at_once_deliver_each_event_once_in_order_per_reader(engine, settings, receiver):
    add_endpoint(engine, receiver)
    readers = []
    for n in range(20):
        readers.append(signup(engine, f"pair{n}@example.com"))
        confirm_reader(engine, readers[-1])
    for reader in readers[::2]:
        leave(engine, reader)

    def drain() -> None:
        while deliver_due(engine, settings, limit=7).attempted:
            pass

    workers = [threading.Thread(target=drain) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert len(receiver.received) == 50
    assert len({item.msg_id for item in receiver.received}) == 50
    for reader, types in per_reader(receiver).items():
        expected = [events.PENDING, events.CONFIRMED]
        assert types == expected + ([events.UNSUBSCRIBED] if readers.index(reader) % 2 == 0 else [])


def test_redirects_are_not_followed_and_a_huge_answer_is_read_only_in_part(engine, settings):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answers(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("location", "http://127.0.0.1:1/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            body = b"x" * 5_000_000
            self.send_response(500)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with session_scope(engine) as session:
            redirect, _ = endpoints.add(session, f"http://127.0.0.1:{port}/redirect", "all", key=KEY)
            huge, _ = endpoints.add(session, f"http://127.0.0.1:{port}/huge", "all", key=KEY)
        redirected = send_test(engine, settings, redirect.id)
        assert not redirected.ok and "redirect, not followed" in redirected.describe()
        answered = send_test(engine, settings, huge.id)
        assert answered.status_code == 500 and len(answered.response) <= 500
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/hook", "must start with https://"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https:///nohost", "no host"),
        ("https://example.com/a b", "space"),
        ("https://example.com/hook#part", "fragment"),
        ("https://example.com:99999/hook", "not a URL"),
        ("https://example.com/" + "a" * 2000, "longer than"),
    ],
)
def test_a_url_that_cannot_be_used_is_refused_with_the_reason(url, problem):
    with pytest.raises(endpoints.EndpointError, match=problem):
        endpoints.check_url(url)


def test_events_are_named_or_all_and_an_unknown_one_is_refused():
    assert endpoints.parse_events("all") == events.ALL
    assert endpoints.parse_events("issue.sent, subscriber.pending") == "subscriber.pending,issue.sent"
    with pytest.raises(endpoints.EndpointError, match=r"unknown event 'subscriber\.joined'"):
        endpoints.parse_events("subscriber.joined")
    with pytest.raises(endpoints.EndpointError, match="at least one"):
        endpoints.parse_events(" , ")


def test_payloads_are_bounded_and_carry_no_token(engine, settings, receiver):
    add_endpoint(engine, receiver)
    reader = signup(engine, "bounded@example.com")
    confirm_reader(engine, reader)
    deliver_due(engine, settings)
    for item in receiver.received:
        text = json.dumps(item.body)
        assert len(text) < 2000
        assert "token" not in text and TEST_KEY not in text and "203.0.113.9" not in text
