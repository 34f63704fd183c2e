"""Postmark's webhooks: one JSON object per event, behind HTTP basic auth.

Postmark signs nothing: the webhook URL carries basic-auth credentials, compared in constant time.
Its events have no id of their own except bounces and complaints (`ID`); the others are keyed by
message id and what tells them apart (the recipient, the time of the open or click).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from newsletter.events.base import (
    NormalisedEvent,
    SignatureError,
    Unprocessable,
    Verified,
    WebhookProvider,
    header,
)
from newsletter.events.fields import (
    TAG,
    email,
    event_key,
    flag,
    identifier,
    key_part,
    load_json,
    mapping,
    moment,
    name,
    optional_key_part,
    row_id,
    text,
)
from newsletter.models import EventKind

if TYPE_CHECKING:
    from newsletter.config import Settings

HARD = {
    "HardBounce",
    "BadEmailAddress",
    "ManuallyDeactivated",
    "Unknown",
    "AddressChange",
    "DMARCPolicy",
    "Blocked",
}


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def verify_basic_auth(headers: Mapping[str, str], user: str, password: str) -> None:
    try:
        scheme, _, encoded = header(headers, "authorization").partition(" ")
        given = base64.b64decode(encoded, validate=True).decode()
    except (SignatureError, binascii.Error, UnicodeDecodeError) as exc:
        raise SignatureError("missing or malformed basic auth") from exc
    given_user, _, given_password = given.partition(":")
    ok_user = hmac.compare_digest(given_user.encode(), user.encode())
    ok_password = hmac.compare_digest(given_password.encode(), password.encode())
    if scheme.lower() != "basic" or not (ok_user and ok_password):
        raise SignatureError("wrong basic-auth credentials")


class PostmarkWebhook(WebhookProvider):
    name = "postmark"

    def verify(self, settings: Settings, headers: Mapping[str, str], body: bytes) -> Verified:
        user, password = settings.postmark_webhook_user, settings.postmark_webhook_password
        if not (user and password):
            raise SignatureError(
                "set NEWSLETTER_POSTMARK_WEBHOOK_USER and _PASSWORD to receive Postmark webhooks"
            )
        verify_basic_auth(headers, user, password)
        return Verified(load_json(body))

    def normalise(self, item: Any, verified: Verified) -> NormalisedEvent:
        record = name(item.get("RecordType"))
        if record is None:
            raise Unprocessable("RecordType is missing or is not a name")
        received = datetime.now(UTC)
        metadata = mapping(item.get("Metadata"))
        message_id = item.get("MessageID")
        common = {
            "provider": self.name,
            "provider_message_id": identifier(message_id),
            "delivery_id": row_id(metadata.get("delivery")),
            "issue": text(item.get("Tag"), TAG) or text(metadata.get("issue"), TAG),
        }
        if record == "Delivery":
            return NormalisedEvent(
                event_key=event_key(
                    "delivery", key_part(message_id, "MessageID"), optional_key_part(item.get("Recipient"))
                ),
                kind=EventKind.DELIVERED,
                recipient=email(item.get("Recipient")),
                occurred_at=moment(item.get("DeliveredAt"), received),
                detail=text(item.get("Details")),
                **common,
            )
        if record in ("Bounce", "SpamComplaint"):
            type_name = name(item.get("Type")) or ""
            if record == "SpamComplaint" or type_name == "SpamComplaint":
                kind = EventKind.COMPLAINED
            elif type_name in HARD or item.get("Inactive") is True:
                kind = EventKind.BOUNCED
            else:
                kind = EventKind.SOFT_BOUNCED
            return NormalisedEvent(
                event_key=event_key(record.lower(), key_part(item.get("ID"), "ID")),
                kind=kind,
                recipient=email(item.get("Email")),
                occurred_at=moment(item.get("BouncedAt"), received),
                detail=text(f"{type_name}: {text(item.get('Description')) or ''}"),
                **common,
            )
        if record in ("Open", "Click"):
            return NormalisedEvent(
                event_key=event_key(
                    record.lower(),
                    key_part(message_id, "MessageID"),
                    key_part(item.get("ReceivedAt"), "ReceivedAt"),
                ),
                kind=EventKind.OPENED if record == "Open" else EventKind.CLICKED,
                recipient=email(item.get("Recipient")),
                occurred_at=moment(item.get("ReceivedAt"), received),
                detail=text(item.get("OriginalLink")) if record == "Click" else None,
                machine=flag(item.get("MachineOpen")) if record == "Open" else None,  # where present
                **common,
            )
        if record == "SubscriptionChange":
            return NormalisedEvent(
                event_key=event_key(
                    "subscription",
                    key_part(message_id, "MessageID"),
                    key_part(item.get("ChangedAt"), "ChangedAt"),
                ),
                kind=EventKind.UNSUBSCRIBED if item.get("SuppressSending") is True else EventKind.OTHER,
                recipient=email(item.get("Recipient")),
                occurred_at=moment(item.get("ChangedAt"), received),
                detail=text(item.get("SuppressionReason")),
                **common,
            )
        if not (optional_key_part(message_id) or optional_key_part(item.get("ID"))):
            raise Unprocessable("MessageID and ID are both missing or are not text or an integer")
        return NormalisedEvent(
            event_key=event_key(record, optional_key_part(message_id), optional_key_part(item.get("ID"))),
            kind=EventKind.OTHER,
            recipient=email(item.get("Recipient")) or email(item.get("Email")),
            occurred_at=received,
            **common,
        )
