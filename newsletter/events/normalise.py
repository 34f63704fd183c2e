"""Each provider's webhook payloads, turned into one vocabulary (`models.EventKind`).

Every event gets a key that is the same when the provider posts it again (its own event id where it
has one), the recipient, the provider's message id and, where our metadata came back with it, the
delivery row it is about.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.models import EventKind


class PayloadError(ValueError):
    """The body is not a payload of this provider; the message says what is wrong."""


@dataclass(frozen=True)
class NormalisedEvent:
    provider: str
    event_key: str
    kind: EventKind
    recipient: str | None
    occurred_at: datetime
    provider_message_id: str | None = None
    delivery_id: int | None = None
    issue: str | None = None
    detail: str | None = None


def _json(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"not JSON: {exc}") from exc


def _when(value) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        text = value.replace("Z", "+00:00")
        if "." in text:  # Postmark writes 7 fractional digits; Python reads at most 6
            head, _, rest = text.partition(".")
            digits = "".join(c for c in rest if c.isdigit())
            zone = rest[len(digits) :]
            text = f"{head}.{digits[:6]}{zone}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return datetime.now(UTC)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def _delivery(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _email(value) -> str | None:
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


# --- Postmark ---------------------------------------------------------------------------------------

POSTMARK_HARD = {
    "HardBounce",
    "BadEmailAddress",
    "ManuallyDeactivated",
    "Unknown",
    "AddressChange",
    "DMARCPolicy",
    "Blocked",
}


def postmark(body: bytes) -> list[NormalisedEvent]:
    data = _json(body)
    if not isinstance(data, dict) or "RecordType" not in data:
        raise PayloadError("a Postmark webhook has a RecordType")
    record = data["RecordType"]
    metadata = data.get("Metadata") or {}
    common = {
        "provider": "postmark",
        "provider_message_id": data.get("MessageID"),
        "delivery_id": _delivery(metadata.get("delivery")),
        "issue": data.get("Tag") or metadata.get("issue"),
    }
    if record == "Delivery":
        return [
            NormalisedEvent(
                event_key=f"delivery:{data.get('MessageID')}:{data.get('Recipient')}",
                kind=EventKind.DELIVERED,
                recipient=_email(data.get("Recipient")),
                occurred_at=_when(data.get("DeliveredAt")),
                detail=data.get("Details"),
                **common,
            )
        ]
    if record in ("Bounce", "SpamComplaint"):
        kind_name = data.get("Type", "")
        if record == "SpamComplaint" or kind_name == "SpamComplaint":
            kind = EventKind.COMPLAINED
        elif kind_name in POSTMARK_HARD or data.get("Inactive") is True:
            kind = EventKind.BOUNCED
        else:
            kind = EventKind.SOFT_BOUNCED
        return [
            NormalisedEvent(
                event_key=f"{record.lower()}:{data.get('ID')}",
                kind=kind,
                recipient=_email(data.get("Email")),
                occurred_at=_when(data.get("BouncedAt")),
                detail=f"{kind_name}: {data.get('Description', '')}"[:1000],
                **common,
            )
        ]
    if record == "Open":
        return [
            NormalisedEvent(
                event_key=f"open:{data.get('MessageID')}:{data.get('ReceivedAt')}",
                kind=EventKind.OPENED,
                recipient=_email(data.get("Recipient")),
                occurred_at=_when(data.get("ReceivedAt")),
                **common,
            )
        ]
    if record == "Click":
        return [
            NormalisedEvent(
                event_key=f"click:{data.get('MessageID')}:{data.get('ReceivedAt')}",
                kind=EventKind.CLICKED,
                recipient=_email(data.get("Recipient")),
                occurred_at=_when(data.get("ReceivedAt")),
                detail=data.get("OriginalLink"),
                **common,
            )
        ]
    if record == "SubscriptionChange":
        kind = EventKind.UNSUBSCRIBED if data.get("SuppressSending") else EventKind.OTHER
        return [
            NormalisedEvent(
                event_key=f"subscription:{data.get('MessageID')}:{data.get('ChangedAt')}",
                kind=kind,
                recipient=_email(data.get("Recipient")),
                occurred_at=_when(data.get("ChangedAt")),
                detail=data.get("SuppressionReason"),
                **common,
            )
        ]
    return [
        NormalisedEvent(
            event_key=f"{record}:{data.get('MessageID')}:{data.get('ID')}",
            kind=EventKind.OTHER,
            recipient=_email(data.get("Recipient") or data.get("Email")),
            occurred_at=datetime.now(UTC),
            **common,
        )
    ]


# --- Resend -----------------------------------------------------------------------------------------

RESEND_KINDS = {
    "email.delivered": EventKind.DELIVERED,
    "email.delivery_delayed": EventKind.DEFERRED,
    "email.complained": EventKind.COMPLAINED,
    "email.opened": EventKind.OPENED,
    "email.clicked": EventKind.CLICKED,
}


def resend(body: bytes, event_id: str) -> list[NormalisedEvent]:
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict) or "type" not in data:
        raise PayloadError("a Resend webhook has a type and a data object")
    event, detail = data["data"], None
    kind = RESEND_KINDS.get(data["type"], EventKind.OTHER)
    if data["type"] == "email.bounced":
        bounce = event.get("bounce") or {}
        kind = EventKind.BOUNCED if bounce.get("type") == "Permanent" else EventKind.SOFT_BOUNCED
        detail = f"{bounce.get('type')}/{bounce.get('subType')}: {bounce.get('message', '')}"[:1000]
    tags = event.get("tags") or {}
    if isinstance(tags, list):
        tags = {t.get("name"): t.get("value") for t in tags if isinstance(t, dict)}
    recipients = event.get("to") or []
    recipient = recipients[0] if isinstance(recipients, list) and recipients else recipients
    return [
        NormalisedEvent(
            provider="resend",
            event_key=event_id,
            kind=kind,
            recipient=_email(recipient),
            occurred_at=_when(data.get("created_at")),
            provider_message_id=event.get("email_id"),
            delivery_id=_delivery(tags.get("delivery")),
            issue=tags.get("issue"),
            detail=detail,
        )
    ]


# --- SendGrid ---------------------------------------------------------------------------------------

SENDGRID_KINDS = {
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
    "dropped": EventKind.BOUNCED,
}


def sendgrid(body: bytes) -> list[NormalisedEvent]:
    data = _json(body)
    if not isinstance(data, list):
        raise PayloadError("a SendGrid event webhook posts a JSON array")
    events = []
    for item in data:
        if not isinstance(item, dict) or "event" not in item:
            raise PayloadError("every SendGrid event has an event field")
        name = item["event"]
        kind = SENDGRID_KINDS.get(name, EventKind.OTHER)
        if name == "bounce":
            kind = EventKind.SOFT_BOUNCED if item.get("type") == "blocked" else EventKind.BOUNCED
        message_id = str(item.get("sg_message_id") or "").split(".", 1)[0] or None
        key = item.get("sg_event_id") or f"{name}:{item.get('sg_message_id')}:{item.get('timestamp')}"
        events.append(
            NormalisedEvent(
                provider="sendgrid",
                event_key=str(key),
                kind=kind,
                recipient=_email(item.get("email")),
                occurred_at=_when(item.get("timestamp")),
                provider_message_id=message_id,
                delivery_id=_delivery(item.get("delivery")),
                issue=item.get("issue"),
                detail=item.get("reason") or item.get("url"),
            )
        )
    return events


# --- Mailgun ----------------------------------------------------------------------------------------

MAILGUN_KINDS = {
    "delivered": EventKind.DELIVERED,
    "complained": EventKind.COMPLAINED,
    "opened": EventKind.OPENED,
    "clicked": EventKind.CLICKED,
    "unsubscribed": EventKind.UNSUBSCRIBED,
}


def mailgun(payload: dict) -> list[NormalisedEvent]:
    event = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(event, dict) or "event" not in event:
        raise PayloadError("a Mailgun webhook has an event-data object")
    name = event["event"]
    kind = MAILGUN_KINDS.get(name, EventKind.OTHER)
    detail = None
    if name == "failed":
        kind = EventKind.BOUNCED if event.get("severity") == "permanent" else EventKind.SOFT_BOUNCED
        status = event.get("delivery-status") or {}
        detail = f"{event.get('reason', '')}: {status.get('message') or status.get('description') or ''}"[
            :1000
        ]
    variables = event.get("user-variables") or {}
    message = event.get("message") or {}
    return [
        NormalisedEvent(
            provider="mailgun",
            event_key=str(event.get("id")),
            kind=kind,
            recipient=_email(event.get("recipient")),
            occurred_at=_when(event.get("timestamp")),
            provider_message_id=(message.get("headers") or {}).get("message-id"),
            delivery_id=_delivery(variables.get("delivery")),
            issue=variables.get("issue"),
            detail=detail,
        )
    ]
