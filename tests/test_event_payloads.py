"""Normalising each provider's webhook payloads, on the example payloads of their documentation,
and the signature checks on their own (a good signature, a tampered body, a stale timestamp)."""

from __future__ import annotations

import json
import time

import pytest

from newsletter.events.base import PayloadError, SignatureError, Verified, WebhookProvider
from newsletter.events.fields import load_json
from newsletter.events.mailgun import MailgunWebhook, sign_mailgun, verify_mailgun
from newsletter.events.postmark import PostmarkWebhook, basic_auth_header, verify_basic_auth
from newsletter.events.resend import ResendWebhook, sign_svix, verify_svix
from newsletter.events.sendgrid import SendGridWebhook, new_sendgrid_keys, sign_sendgrid, verify_sendgrid
from newsletter.models import EventKind

POSTMARK_BOUNCE = {
    "RecordType": "Bounce",
    "MessageStream": "outbound",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "Test",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Metadata": {"a_key": "a_value", "b_key": "b_value"},
    "ServerID": 23,
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
    "Details": "Test bounce details",
    "Email": "john@example.com",
    "From": "sender@example.com",
    "BouncedAt": "2019-11-05T16:33:54.9070259Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Test subject",
    "Content": "<Full dump of bounce>",
}
POSTMARK_DELIVERY = {
    "RecordType": "Delivery",
    "ServerID": 23,
    "MessageStream": "outbound",
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Recipient": "john@example.com",
    "Tag": "welcome-email",
    "DeliveredAt": "2021-02-21T16:34:52Z",
    "Details": "Test delivery webhook details",
    "Metadata": {"example": "value", "delivery": "42"},
}
POSTMARK_COMPLAINT = {
    "RecordType": "SpamComplaint",
    "MessageStream": "outbound",
    "ID": 42,
    "Type": "SpamComplaint",
    "TypeCode": 512,
    "Name": "Spam complaint",
    "Tag": "Test",
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Metadata": {"a_key": "a_value"},
    "ServerID": 1234,
    "Description": "",
    "Details": "Test spam complaint details",
    "Email": "john@example.com",
    "From": "sender@example.com",
    "BouncedAt": "2019-11-05T16:33:54.9070259Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": False,
    "Subject": "Test subject",
}
SENDGRID_EVENTS = [
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": "processed",
        "category": "cat facts",
        "sg_event_id": "rbtnWrG1DVDGGGFHFyun0A==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.000000000000000000000",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "bounce",
        "category": "cat facts",
        "sg_event_id": "6g4ZI7SA-xmRDv57GoPIPw==",
        "reason": "500 unknown recipient",
        "status": "5.0.0",
        "type": "bounce",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "delivery": "7",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "spamreport",
        "sg_event_id": "37nvH5QBz858KGVYCM4uOA==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    },
    {
        "email": "example@test.com",
        "timestamp": 1513299569,
        "event": "bounce",
        "type": "blocked",
        "sg_event_id": "blocked0001",
        "reason": "421 try later",
        "sg_message_id": "14c5d75ce93.dfd.64b469.f.0",
    },
]
MAILGUN_FAILED = {
    "signature": {
        "timestamp": "1529006854",
        "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
        "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55",
    },
    "event-data": {
        "tags": ["my_tag_1", "my_tag_2"],
        "timestamp": 1521233123.501324,
        "recipient-domain": "example.com",
        "event": "failed",
        "campaigns": [],
        "user-variables": {"my_var_1": "Mailgun Variable #1", "delivery": "9"},
        "log-level": "error",
        "message": {
            "headers": {
                "to": "Alice <alice@example.com>",
                "message-id": "20130503192659.13651.20287@example.com",
                "from": "Bob <bob@example.com>",
                "subject": "Test permanent_fail webhook",
            },
            "attachments": [],
            "size": 111,
        },
        "recipient": "alice@example.com",
        "reason": "suppress-bounce",
        "severity": "permanent",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "delivery-status": {
            "attempt-no": 1,
            "message": "",
            "code": 605,
            "description": "Not delivering to previously bounced address",
            "session-seconds": 0.0,
        },
    },
}
RESEND_BOUNCED = {
    "type": "email.bounced",
    "created_at": "2024-11-22T23:41:12.126Z",
    "data": {
        "broadcast_id": "8b146471-e88e-4322-86af-016cd36fd216",
        "created_at": "2024-11-22T23:41:11.894719+00:00",
        "email_id": "56761188-7520-42d8-8898-ff6fc54ce618",
        "from": "Acme <onboarding@resend.dev>",
        "to": ["delivered@resend.dev"],
        "subject": "Sending this example",
        "bounce": {
            "message": "The recipient's email address is on the suppression list because it has a "
            "recent history of producing hard bounces.",
            "subType": "Suppressed",
            "type": "Permanent",
        },
        "tags": {"category": "confirm_email", "delivery": "12"},
    },
}


def body(data) -> bytes:
    return json.dumps(data).encode()


def events(provider: WebhookProvider, raw: bytes, request_id: str | None = None):
    """The events `provider` reads from a body, as if its signature had been verified."""
    received = provider.read(Verified(load_json(raw), request_id))
    assert not received.unprocessable, received.problems
    return received.events


def postmark(raw: bytes):
    return events(PostmarkWebhook(), raw)


def test_postmark_bounce_delivery_and_complaint():
    (bounce,) = postmark(body(POSTMARK_BOUNCE))
    assert (bounce.kind, bounce.recipient, bounce.event_key) == (
        EventKind.BOUNCED,
        "john@example.com",
        "bounce:4323372036854775807",
    )
    assert bounce.provider_message_id == "883953f4-6105-42a2-a16a-77a8eac79483"
    assert bounce.occurred_at.isoformat().startswith("2019-11-05T16:33:54.907025")
    (delivery,) = postmark(body(POSTMARK_DELIVERY))
    assert (delivery.kind, delivery.delivery_id) == (EventKind.DELIVERED, 42)
    (complaint,) = postmark(body(POSTMARK_COMPLAINT))
    assert complaint.kind == EventKind.COMPLAINED
    soft = postmark(body(POSTMARK_BOUNCE | {"Type": "SoftBounce", "Inactive": False}))[0]
    assert soft.kind == EventKind.SOFT_BOUNCED


def test_sendgrid_array_of_events():
    found = events(SendGridWebhook(), body(SENDGRID_EVENTS))
    assert [e.kind for e in found] == [
        EventKind.OTHER,
        EventKind.BOUNCED,
        EventKind.COMPLAINED,
        EventKind.SOFT_BOUNCED,
    ]
    assert found[1].event_key == "6g4ZI7SA-xmRDv57GoPIPw==" and found[1].delivery_id == 7
    assert found[1].provider_message_id == "14c5d75ce93"


def test_mailgun_permanent_failure():
    (event,) = events(MailgunWebhook(), body(MAILGUN_FAILED))
    assert (event.kind, event.recipient, event.event_key, event.delivery_id) == (
        EventKind.BOUNCED,
        "alice@example.com",
        "G9Bn5sl1TC6nu79C8C0bwg",
        9,
    )
    assert event.provider_message_id == "20130503192659.13651.20287@example.com"
    temporary = json.loads(json.dumps(MAILGUN_FAILED))
    temporary["event-data"]["severity"] = "temporary"
    assert events(MailgunWebhook(), body(temporary))[0].kind == EventKind.SOFT_BOUNCED


def test_resend_bounce():
    (event,) = events(ResendWebhook(), body(RESEND_BOUNCED), "msg_2Kx")
    assert (event.kind, event.recipient, event.delivery_id, event.event_key) == (
        EventKind.BOUNCED,
        "delivered@resend.dev",
        12,
        "msg_2Kx",
    )


@pytest.mark.parametrize(
    ("provider", "payload"),
    [
        (PostmarkWebhook(), b"[]"),
        (PostmarkWebhook(), b"not json"),
        (PostmarkWebhook(), b"[" * 100_000),
        (SendGridWebhook(), b"{}"),
        (ResendWebhook(), b'{"type": "email.sent"}'),
        (ResendWebhook(), b'{"type": "email.sent", "data": []}'),
        (MailgunWebhook(), b'{"signature": {}}'),
    ],
)
def test_payloads_of_the_wrong_shape_are_refused(provider, payload):
    with pytest.raises(PayloadError):
        provider.read(Verified(load_json(payload), "msg_1"))


def test_a_sendgrid_item_that_is_not_an_event_is_unprocessable_and_the_others_are_read():
    received = SendGridWebhook().read(
        Verified(load_json(b'[1, {"event": ["x"]}, ' + body(SENDGRID_EVENTS[1]) + b"]"))
    )
    assert [e.event_key for e in received.events] == ["6g4ZI7SA-xmRDv57GoPIPw=="]
    assert received.unprocessable == 2 and received.problems == [
        "event 1: is not a JSON object",
        "event 2: event is missing or is not a name",
    ]


def test_svix_signature_round_trip_tamper_and_staleness():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    raw = body(RESEND_BOUNCED)
    now = int(time.time())
    headers = sign_svix(raw, secret, "msg_1", now)
    assert verify_svix(headers, raw, secret) == "msg_1"
    with pytest.raises(SignatureError, match="no valid v1 signature"):
        verify_svix(headers, raw + b" ", secret)
    with pytest.raises(SignatureError, match="outside the accepted window"):
        verify_svix(sign_svix(raw, secret, "msg_1", now - 3600), raw, secret)
    with pytest.raises(SignatureError, match="missing svix-id"):
        verify_svix({}, raw, secret)


def test_sendgrid_ecdsa_round_trip_and_tamper():
    private, public = new_sendgrid_keys()
    raw = body(SENDGRID_EVENTS)
    headers = sign_sendgrid(raw, private, int(time.time()))
    verify_sendgrid(headers, raw, public)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_sendgrid(headers, raw.replace(b"bounce", b"delivered", 1), public)
    _, other_public = new_sendgrid_keys()
    with pytest.raises(SignatureError):
        verify_sendgrid(headers, raw, other_public)


def test_mailgun_hmac_round_trip_and_tamper():
    key = "key-7e55b5c9"
    signature = sign_mailgun(key, int(time.time()), "token123")
    assert verify_mailgun(signature, key) == "token123"
    with pytest.raises(SignatureError, match="HMAC does not match"):
        verify_mailgun(signature | {"token": "token124"}, key)
    with pytest.raises(SignatureError, match="outside"):
        verify_mailgun(MAILGUN_FAILED["signature"], key)  # 2018: long stale


def test_basic_auth_for_postmark():
    verify_basic_auth(basic_auth_header("hook", "s3cret"), "hook", "s3cret")
    with pytest.raises(SignatureError):
        verify_basic_auth(basic_auth_header("hook", "guess"), "hook", "s3cret")
    with pytest.raises(SignatureError):
        verify_basic_auth({"Authorization": "Bearer x"}, "hook", "s3cret")
