"""Provider webhooks that cannot cause a 5xx: every field of every event is bounded before the store.

Every request here is correctly signed, so it reaches the normalisation and the store. Three parts:
the cases an attacker found (against a real `newsletter serve`), a generated battery (every field
path of each provider's realistic payloads, each replaced by each hostile value, in-process, with a
sample replayed against the real server) and a SendGrid batch whose good events must be stored next
to its bad ones. After each part, nothing stored may exceed its column or hold a NUL.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.db import create_schema, make_engine
from newsletter.events.base import NormalisedEvent
from newsletter.events.fields import DETAIL, EVENT_KEY, MESSAGE_ID
from newsletter.events.intake import store_events
from newsletter.models import Delivery, EventKind, Issue, ProviderEvent, Subscriber, SubscriberStatus
from newsletter.web import create_app
from tests.conftest import TEST_KEY
from tests.databases import ON_POSTGRES, database_url
from tests.test_event_payloads import (
    MAILGUN_FAILED,
    POSTMARK_BOUNCE,
    POSTMARK_DELIVERY,
    RESEND_BOUNCED,
    SENDGRID_EVENTS,
)
from tests.web_server import Server, server_env, serving
from tests.webhook_requests import (
    BIG,
    CANARY,
    MAILGUN_KEY,
    POSTMARK_CLICK,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    RESEND_SECRET,
    SECRETS,
    SENDGRID_PUBLIC,
    WEBHOOK_SETTINGS,
    App,
    Case,
    Request,
    battery,
    mailgun,
    over_asgi,
    over_http,
    signed,
    signed_body,
    unique,
)

READER = "reader@example.com"
SEEDED_MESSAGE_ID = "seeded-message-0001"


def seed(url: str) -> int:
    """A reader with a delivery sent under SEEDED_MESSAGE_ID; the delivery's id."""
    engine = make_engine(url)
    with Session(engine) as session:
        reader = Subscriber(email=READER, status=SubscriberStatus.ACTIVE, source="test")
        issue = Issue(week="2026-W01", status="sent")
        session.add(reader)
        session.add(issue)
        session.flush()
        delivery = Delivery(
            issue_id=issue.id, subscriber_id=reader.id, status="sent", provider_message_id=SEEDED_MESSAGE_ID
        )
        session.add(delivery)
        session.commit()
        delivery_id = delivery.id
    engine.dispose()
    return delivery_id


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> Iterator[App]:
    directory = tmp_path_factory.mktemp("bounds-app")
    url = database_url(directory)
    if ON_POSTGRES:  # thousands of commits in a row need not each wait for the disk (fsync)
        url = make_url(url).update_query_dict({"options": "-c synchronous_commit=off"})
        url = url.render_as_string(hide_password=False)
    settings = Settings(
        _env_file=None,
        database_url=url,
        outbox_dir=directory / "outbox",
        secret_key=TEST_KEY,
        secret_file=directory / ".newsletter-secret",
        **WEBHOOK_SETTINGS,
    )
    engine = make_engine(url)
    create_schema(engine)
    seed(url)
    yield App(over_asgi(create_app(settings, engine)), url)
    engine.dispose()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory) -> Iterator[App]:
    """A real `newsletter serve` (uvicorn on 127.0.0.1) with every provider's secret configured."""
    directory: Path = tmp_path_factory.mktemp("bounds-serve")
    env = server_env(
        directory,
        postmark_webhook_user=POSTMARK_USER,
        postmark_webhook_password=POSTMARK_PASSWORD,
    ) | {
        "RESEND_WEBHOOK_SECRET": RESEND_SECRET,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": SENDGRID_PUBLIC,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }
    server = Server(url="", directory=directory, env=env)
    init = server.cli("init", "--sample")
    assert init.returncode == 0, init.stderr
    seed(database_url(directory))
    with serving(server, "serve"), httpx.Client(base_url=server.url, timeout=60) as client:
        yield App(over_http(client), database_url(directory))
    log = (directory / "serve.log").read_text()
    assert not any(secret in log for secret in SECRETS), "a webhook secret reached the server's log"


def stored(app: App) -> list[ProviderEvent]:
    engine = make_engine(app.database)
    try:
        with Session(engine) as session:
            return list(session.exec(select(ProviderEvent)))
    finally:
        engine.dispose()


def assert_bounded(app: App) -> list[ProviderEvent]:
    """Every stored event fits its columns (SQLite would have kept anything) and holds no NUL."""
    rows = stored(app)
    for row in rows:
        assert len(row.event_key) <= EVENT_KEY, row.event_key[:80]
        assert row.provider_message_id is None or len(row.provider_message_id) <= MESSAGE_ID
        assert row.detail is None or len(row.detail) <= DETAIL
        for value in (row.event_key, row.provider_message_id, row.detail, row.kind, row.provider):
            if value is not None:
                assert "\x00" not in value, value[:80]
                value.encode("utf-8")  # no lone surrogate: PostgreSQL could not have stored it
    return rows


def answer_of(response: httpx.Response, request: Request, label: str) -> dict | None:
    """The JSON of a 200 (whose counts must add up to the events posted), or None for a 4xx."""
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    if response.status_code != 200:
        assert 400 <= response.status_code < 500 and "detail" in response.json(), label
        return None
    answer = response.json()
    counted = answer["stored"] + answer["duplicates"] + answer["unprocessable"]
    assert counted == request.events, f"{label}: {answer}"
    # the nets behind the bounds (a reading bug, a value the store refused) must never be needed
    assert not [p for p in answer["problems"] if p.endswith(("could not be read", "by the store"))], label
    return answer


# --- (1) the cases that answered 500 -----------------------------------------------------------------


def _timestamps() -> list[str]:
    now = int(time.time())
    return ["nan", "NaN", "inf", f"{now}.5", f"{now}e0", f" {now}", f"+{now}", f"{now:_}", "١٧٠٠٠٠٠٠٠٠", ""]


def attacker_cases() -> list[tuple[str, Request, str]]:
    """(label, request, what must happen): "refused" (401), or "unprocessable", or "stored"."""
    cases = []
    for stamp in _timestamps():
        if stamp.isascii() and stamp == stamp.strip():  # what an HTTP header can carry
            cases.append(
                (f"svix-timestamp {stamp!r}", signed("resend", RESEND_BOUNCED, stamp=stamp), "refused")
            )
            cases.append(
                (f"sendgrid timestamp {stamp!r}", signed("sendgrid", SENDGRID_EVENTS, stamp=stamp), "refused")
            )
        cases.append(
            (f"mailgun timestamp {stamp!r}", signed("mailgun", MAILGUN_FAILED, stamp=stamp), "refused")
        )
    postmark_fields = [
        ("Metadata", "x"),
        ("DeliveredAt", 1e300),
        ("DeliveredAt", -1e18),
        ("Details", {"a": 1}),
        ("Metadata", {"delivery": "1" * 23}),
        ("Metadata", {"delivery": 10**22}),
        ("MessageID", "m" * 201),
        ("Details", "d" * 1001),
        ("Details", BIG),
        ("Details", "nul\x00inside"),
        ("Recipient", "john\x00@example.com"),
        ("Tag", "t\x00g"),
    ]
    for name, value in postmark_fields:
        payload = unique("postmark", POSTMARK_DELIVERY) | {name: value}
        cases.append((f"postmark Delivery {name}={value!r:.40}", signed("postmark", payload), "stored"))
    click = unique("postmark", POSTMARK_CLICK) | {"OriginalLink": "https://example.com/" + "l" * 1500}
    cases.append(("postmark Click OriginalLink of 1,500", signed("postmark", click), "stored"))
    click = unique("postmark", POSTMARK_CLICK) | {"OriginalLink": "https://example.com/\x00"}
    cases.append(("postmark Click OriginalLink with NUL", signed("postmark", click), "stored"))
    bounce = unique("postmark", POSTMARK_BOUNCE) | {"ID": "i\x00d", "Description": "\x00" * 2000}
    cases.append(("postmark Bounce ID and Description with NUL", signed("postmark", bounce), "stored"))
    cases.append(("resend type ['x']", signed("resend", RESEND_BOUNCED | {"type": ["x"]}), "unprocessable"))
    data = RESEND_BOUNCED["data"] | {"email_id": "e\x00", "to": ["a\x00@b.c"], "tags": "x"}
    cases.append(("resend data with NUL", signed("resend", RESEND_BOUNCED | {"data": data}), "stored"))
    cases.append(
        ("a svix-id of 300 characters", signed("resend", RESEND_BOUNCED, request_id="m" * 300), "stored")
    )
    event = unique("mailgun", MAILGUN_FAILED)
    event["event-data"]["message"] = "x"
    cases.append(("mailgun message 'x'", signed("mailgun", event), "stored"))
    event = unique("mailgun", MAILGUN_FAILED)
    event["event-data"] |= {"id": "g\x00" * 150, "reason": "r\x00", "user-variables": []}
    cases.append(("mailgun id and reason with NUL", signed("mailgun", event), "stored"))
    sendgrid = unique("sendgrid", SENDGRID_EVENTS)
    sendgrid[1] |= {"reason": "r" * 1500, "sg_event_id": "e" * 300, "delivery": "9" * 23}
    sendgrid[2] |= {"sg_message_id": "m" * 300, "email": "\x00"}
    cases.append(("sendgrid long and NUL fields", signed("sendgrid", sendgrid), "stored"))
    return cases


def test_the_reported_cases_get_a_4xx_or_are_stored_bounded_on_a_real_server(real_server):
    before, stored_total = len(stored(real_server)), 0
    for label, request, outcome in attacker_cases():
        response = real_server.send(request)
        answer = answer_of(response, request, label)
        if outcome == "refused":
            assert response.status_code == 401 and "timestamp" in response.text, label
        elif outcome == "unprocessable":
            assert answer and answer["unprocessable"] == 1 and answer["stored"] == 0, f"{label}: {answer}"
        else:
            assert answer and answer["stored"] == request.events, f"{label}: {answer}"
            stored_total += answer["stored"]
    assert len(assert_bounded(real_server)) == before + stored_total


def test_a_bad_delivery_id_falls_back_to_the_message_id_and_recipient(in_process):
    delivery_id = stored_delivery_id(in_process)
    values = ("1" * 23, 10**22, 2**31, -5, "٣", 1.0, {"a": 1})
    for n, value in enumerate(values, start=1):
        payload = POSTMARK_DELIVERY | {
            "MessageID": SEEDED_MESSAGE_ID,
            # Postmark's delivery key is message id and recipient: another case of the address is
            # another key, and the same reader
            "Recipient": _cased(READER, n),
            "Metadata": {"delivery": value},
            "Details": f"fallback {n}",
        }
        request = signed("postmark", payload)
        answer = answer_of(in_process.send(request), request, repr(value))
        assert answer and answer["stored"] == 1, answer
    tied = [row for row in assert_bounded(in_process) if (row.detail or "").startswith("fallback")]
    assert len(tied) == len(values) and {row.delivery_id for row in tied} == {delivery_id}


def _cased(address: str, n: int) -> str:
    """The same address in another mix of upper and lower case (a new Postmark delivery key)."""
    letters = [c.upper() if n >> i & 1 else c for i, c in enumerate(address)]
    return "".join(letters)


def stored_delivery_id(app: App) -> int:
    engine = make_engine(app.database)
    try:
        with Session(engine) as session:
            return session.exec(
                select(Delivery.id).where(Delivery.provider_message_id == SEEDED_MESSAGE_ID)
            ).one()
    finally:
        engine.dispose()


# --- (2) the generated battery ---------------------------------------------------------------------


def run_battery(app: App, cases: list[Case]) -> int:
    """Post every case; return how many events they stored."""
    stored_total = 0
    requests = [case.request() for case in cases]
    for case, request, response in zip(cases, requests, app.send_all(requests), strict=True):
        answer = answer_of(response, request, str(case))
        if not case.sample.may_refuse(case.path):
            # an optional field, however hostile, is dropped or cut: the event itself is stored
            assert answer is not None, f"{case}: {response.status_code} {response.text[:200]}"
            assert answer["stored"] == request.events, f"{case}: {answer}"
        elif answer and case.path:
            # a refused event of a batch never holds back the good one next to it
            assert answer["stored"] >= request.events - 1, f"{case}: {answer}"
        stored_total += answer["stored"] if answer else 0
    return stored_total


def test_every_field_of_every_provider_with_every_hostile_value_in_process(in_process, caplog):
    before = len(stored(in_process))
    cases = battery()
    assert len(cases) > 3000  # the class, not a few examples
    with caplog.at_level(logging.WARNING, logger="newsletter"):
        stored_total = run_battery(in_process, cases)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors[0].getMessage()  # no reading bug caught by the safety net, no DataError
    for record in caplog.records:
        message = record.getMessage()
        assert CANARY not in message and not any(secret in message for secret in SECRETS), message[:200]
    assert len(assert_bounded(in_process)) == before + stored_total


def test_a_sample_of_the_battery_against_a_real_server(real_server):
    cases = battery()[::61]
    assert len(cases) >= 50
    before = len(stored(real_server))
    stored_total = run_battery(real_server, cases)
    assert len(assert_bounded(real_server)) == before + stored_total


def test_bodies_that_are_not_the_providers_json_get_400(in_process):
    for provider, raw in [
        ("postmark", b"\xff\xfe not utf-8 {"),
        ("postmark", b"[" * 50_000),
        ("resend", b'{"type": "email.sent", "data": "x"}'),
        ("sendgrid", b'{"event": "delivered"}'),
        ("mailgun", b"NaN"),
    ]:
        request = signed_body(provider, raw)
        response = in_process.send(request)
        assert response.status_code == 400, (provider, raw[:30], response.text[:200])


def test_an_unprocessable_event_is_logged_by_place_and_field_never_by_value(in_process, caplog):
    requests = [
        signed("postmark", POSTMARK_DELIVERY | {"RecordType": {"secret": CANARY}}),
        signed("mailgun", mailgun(MAILGUN_FAILED["event-data"] | {"event": [CANARY]})),
    ]
    with caplog.at_level(logging.WARNING, logger="newsletter"):
        for request in requests:
            answer = answer_of(in_process.send(request), request, request.provider)
            assert answer and answer["unprocessable"] == 1 and answer["problems"], answer
            assert CANARY not in json.dumps(answer)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("postmark webhook: 1 of 1 events unprocessable: event 1: RecordType" in w for w in warnings)
    assert any(
        "mailgun webhook: 1 of 1 events unprocessable: event 1: event-data.event" in w for w in warnings
    )
    assert not any(CANARY in w or any(s in w for s in SECRETS) for w in warnings)


# --- (3) a SendGrid batch of good and bad events -------------------------------------------------------


def test_a_sendgrid_batch_stores_its_good_events_next_to_its_bad_ones(real_server):
    good = unique("sendgrid", SENDGRID_EVENTS)
    bad: list[Any] = [
        1,
        None,
        [],
        {"event": ["x"], "sg_event_id": "bad-1"},
        {"event": "delivered", "sg_event_id": {"a": 1}},  # no usable id, and nothing to build one from
        {"sg_event_id": "bad-3"},
        {"event": "x\x00", "sg_event_id": "bad-4"},
    ]
    batch = [bad[0], good[0], bad[1], bad[2], good[1], bad[3], bad[4], good[2], bad[5], bad[6], good[3]]
    request = signed("sendgrid", batch)
    answer = answer_of(real_server.send(request), request, "mixed batch")
    assert answer == answer | {"stored": 4, "duplicates": 0, "unprocessable": 7}, answer
    assert answer["problems"] == [
        "event 1: is not a JSON object",
        "event 3: is not a JSON object",
        "event 4: is not a JSON object",
        "event 6: event is missing or is not a name",
        "event 7: sg_event_id, and so sg_message_id, is missing or is not text or an integer",
        "event 9: event is missing or is not a name",
        "event 10: event is missing or is not a name",
    ]
    keys = {row.event_key for row in assert_bounded(real_server)}
    assert {item["sg_event_id"] for item in good} <= keys
    assert not {"bad-1", "bad-3", "bad-4"} & keys
    again = real_server.send(signed("sendgrid", batch))
    assert again.json() | {"problems": []} == {
        "stored": 0,
        "duplicates": 4,
        "suppressed": 0,
        "unprocessable": 7,
        "problems": [],
    }


def test_an_event_the_store_refuses_costs_only_itself(session, caplog):
    """The net behind the bounds: should a value the store cannot hold get past them (PostgreSQL
    refuses a NUL or an over-long VARCHAR; SQLite keeps both), that event alone is refused."""
    now = datetime.now(UTC)

    def event(key: str, detail: str) -> NormalisedEvent:
        return NormalisedEvent("sendgrid", key, EventKind.DELIVERED, None, now, detail=detail)

    batch = [
        event("good-1", "fine"),
        event("nul", "a\x00b"),
        event("long", "d" * 1001),
        event("good-2", "ok"),
    ]
    with caplog.at_level(logging.ERROR, logger="newsletter"):
        report = store_events(session, batch)
        session.commit()
    keys = set(session.exec(select(ProviderEvent.event_key)))
    if ON_POSTGRES:
        assert (report.stored, report.refused.unprocessable) == (2, 2) and keys == {"good-1", "good-2"}
        assert report.refused.problems == ["event 2: refused by the store", "event 3: refused by the store"]
        assert all("a\x00b" not in r.getMessage() for r in caplog.records) and len(caplog.records) == 2
    else:
        assert (report.stored, report.refused.unprocessable) == (4, 0) and len(keys) == 4
