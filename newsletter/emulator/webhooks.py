"""Events posted back to the app the way each provider posts them: its payload shape, its signature.

Payloads follow the providers' documented examples; the ids, recipient and metadata come from the
message the emulator accepted, so the app can tie each event to its delivery.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.emulator.state import Record
from newsletter.events.mailgun import sign_mailgun
from newsletter.events.postmark import basic_auth_header
from newsletter.events.resend import sign_svix
from newsletter.events.sendgrid import new_sendgrid_keys, sign_sendgrid

KINDS = ("delivered", "bounced", "soft_bounced", "complained", "opened", "clicked")


@dataclass
class WebhookSecrets:
    """Fresh secrets per emulator unless given; `GET /_emulator/webhook-keys` tells them to the app."""

    postmark_user: str = "postmark"
    postmark_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    resend_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )
    mailgun_signing_key: str = field(default_factory=lambda: secrets.token_hex(16))
    sendgrid_private_key: ec.EllipticCurvePrivateKey | None = None
    sendgrid_public_key: str = ""

    def __post_init__(self) -> None:
        if self.sendgrid_private_key is None:
            self.sendgrid_private_key, self.sendgrid_public_key = new_sendgrid_keys()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def postmark_payload(kind: str, record: Record, event_id: str) -> dict:
    base = {
        "MessageID": record.provider_message_id,
        "Tag": record.tag,
        "Metadata": record.metadata,
        "MessageStream": "broadcast",
        "ServerID": 1,
    }
    now = _iso(time.time())
    if kind == "delivered":
        return {
            "RecordType": "Delivery",
            "Recipient": record.to,
            "DeliveredAt": now,
            "Details": "Test delivery webhook details",
            **base,
        }
    if kind in ("bounced", "soft_bounced", "complained"):
        kinds = {
            "bounced": ("Bounce", "HardBounce", 1, True),
            "soft_bounced": ("Bounce", "SoftBounce", 4096, False),
            "complained": ("SpamComplaint", "SpamComplaint", 512, True),
        }
        record_type, name, code, inactive = kinds[kind]
        return {
            "RecordType": record_type,
            "ID": int(event_id) if event_id.isdigit() else abs(hash(event_id)),
            "Type": name,
            "TypeCode": code,
            "Email": record.to,
            "From": "issue@verdicts.example.com",
            "BouncedAt": now,
            "Inactive": inactive,
            "CanActivate": True,
            "Subject": record.subject,
            "Description": "The server was unable to deliver your message "
            "(ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            **base,
        }
    if kind == "opened":
        return {"RecordType": "Open", "Recipient": record.to, "ReceivedAt": now, "FirstOpen": True, **base}
    return {
        "RecordType": "Click",
        "Recipient": record.to,
        "ReceivedAt": now,
        "OriginalLink": "https://verdicts.example.com/compare/x",
        **base,
    }


def resend_payload(kind: str, record: Record) -> dict:
    types = {
        "delivered": "email.delivered",
        "bounced": "email.bounced",
        "soft_bounced": "email.bounced",
        "complained": "email.complained",
        "opened": "email.opened",
        "clicked": "email.clicked",
    }
    data = {
        "email_id": record.provider_message_id,
        "from": "issue@verdicts.example.com",
        "to": [record.to],
        "subject": record.subject,
        "created_at": _iso(record.accepted_at),
        "tags": record.metadata,
    }
    if kind in ("bounced", "soft_bounced"):
        permanent = kind == "bounced"
        data["bounce"] = {
            "type": "Permanent" if permanent else "Transient",
            "subType": "General" if permanent else "MailboxFull",
            "message": "The recipient's email provider sent a hard bounce message.",
        }
    return {"type": types[kind], "created_at": _iso(time.time()), "data": data}


def sendgrid_event(kind: str, record: Record, event_id: str) -> dict:
    names = {
        "delivered": "delivered",
        "bounced": "bounce",
        "soft_bounced": "bounce",
        "complained": "spamreport",
        "opened": "open",
        "clicked": "click",
    }
    event = {
        "email": record.to,
        "timestamp": int(time.time()),
        "event": names[kind],
        "sg_event_id": event_id,
        "sg_message_id": f"{record.provider_message_id}.filterdrecv-5645d9c87f-abcde-1-0",
        "category": [record.tag] if record.tag else [],
        **record.metadata,
    }
    if kind == "bounced":
        event |= {
            "type": "bounce",
            "reason": "550 5.1.1 The email account does not exist.",
            "status": "5.1.1",
        }
    if kind == "soft_bounced":
        event |= {"type": "blocked", "reason": "421 Try again later", "status": "4.0.0"}
    return event


def mailgun_payload(kind: str, record: Record, event_id: str, signing_key: str) -> dict:
    names = {
        "delivered": "delivered",
        "bounced": "failed",
        "soft_bounced": "failed",
        "complained": "complained",
        "opened": "opened",
        "clicked": "clicked",
    }
    data = {
        "id": event_id,
        "event": names[kind],
        "timestamp": time.time(),
        "recipient": record.to,
        "tags": [record.tag] if record.tag else [],
        "user-variables": record.metadata,
        "message": {"headers": {"message-id": record.provider_message_id, "subject": record.subject}},
    }
    if kind in ("bounced", "soft_bounced"):
        data |= {
            "severity": "permanent" if kind == "bounced" else "temporary",
            "reason": "bounce",
            "delivery-status": {"code": 550 if kind == "bounced" else 452, "message": "No such user"},
        }
    signature = sign_mailgun(signing_key, int(time.time()), secrets.token_hex(25))
    return {"signature": signature, "event-data": data}


def build(
    provider: str, events: list[tuple[str, Record, str]], keys: WebhookSecrets, signature: str = "good"
) -> list[tuple[bytes, dict[str, str]]]:
    """(body, headers) per request to post; SendGrid posts all events in one array."""
    requests = []
    if provider == "sendgrid":
        body = json.dumps(
            [sendgrid_event(kind, record, event_id) for kind, record, event_id in events]
        ).encode()
        requests.append((body, {}))
    else:
        for kind, record, event_id in events:
            if provider == "postmark":
                payload = postmark_payload(kind, record, event_id)
            elif provider == "resend":
                payload = resend_payload(kind, record)
            else:
                payload = mailgun_payload(kind, record, event_id, keys.mailgun_signing_key)
                if signature == "bad":
                    payload["signature"]["signature"] = "0" * 64
                elif signature == "none":
                    del payload["signature"]
            requests.append((json.dumps(payload).encode(), {"_event_id": event_id}))
    signed = []
    for body, extra in requests:
        event_id = extra.pop("_event_id", str(uuid.uuid4()))
        headers = {"Content-Type": "application/json"}
        if signature != "none":
            if provider == "postmark":
                password = keys.postmark_password if signature == "good" else "wrong"
                headers |= basic_auth_header(keys.postmark_user, password)
            elif provider == "resend":
                headers |= sign_svix(body, keys.resend_secret, f"msg_{event_id}", int(time.time()))
                if signature == "bad":
                    headers["svix-signature"] = "v1,AAAA" + headers["svix-signature"][7:]
            elif provider == "sendgrid":
                headers |= sign_sendgrid(body, keys.sendgrid_private_key, int(time.time()))
                if signature == "bad":
                    body = body.replace(b"}", b' ,"x": 1}', 1) if body.count(b"}") else body + b" "
        signed.append((body, headers))
    return signed


async def post(url: str, requests: list[tuple[bytes, dict[str, str]]]) -> list[dict]:
    """Post each request; return their statuses and answers."""
    answers = []
    async with httpx.AsyncClient(timeout=30) as client:
        for body, headers in requests:
            response = await client.post(url, content=body, headers=headers)
            answers.append({"status": response.status_code, "body": response.text[:500]})
    return answers
