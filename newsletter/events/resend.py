"""Resend's webhooks: one event per request, signed with Svix.

Svix signs `id.timestamp.body` with HMAC-SHA256 under the secret after `whsec_`; the svix-id is the
event's id, the same across Resend's retries, so it is the event's key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from newsletter.events.base import (
    TOLERANCE_SECONDS,
    NormalisedEvent,
    PayloadError,
    SignatureError,
    Unprocessable,
    Verified,
    WebhookProvider,
    fresh,
    header,
)
from newsletter.events.fields import (
    TAG,
    email,
    event_key,
    identifier,
    key_part,
    load_json,
    mapping,
    moment,
    name,
    row_id,
    text,
)
from newsletter.models import EventKind

if TYPE_CHECKING:
    from newsletter.config import Settings

KINDS = {
    "email.delivered": EventKind.DELIVERED,
    "email.delivery_delayed": EventKind.DEFERRED,
    "email.complained": EventKind.COMPLAINED,
    "email.opened": EventKind.OPENED,
    "email.clicked": EventKind.CLICKED,
}


def _svix_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise SignatureError("the configured Resend secret is not whsec_<base64>") from exc


def sign_svix(body: bytes, secret: str, message_id: str, timestamp: int | str) -> dict[str, str]:
    content = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(_svix_key(secret), content, hashlib.sha256).digest()).decode()
    return {"svix-id": message_id, "svix-timestamp": str(timestamp), "svix-signature": f"v1,{signature}"}


def verify_svix(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Verify and return the svix-id (the event's id, the same across the provider's retries)."""
    message_id, timestamp = header(headers, "svix-id"), header(headers, "svix-timestamp")
    fresh(timestamp, now, tolerance)  # whole seconds: signed as written, so compared as written
    expected = sign_svix(body, secret, message_id, timestamp)["svix-signature"].split(",", 1)[1]
    for candidate in header(headers, "svix-signature").split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected.encode()):
            return message_id
    raise SignatureError("no valid v1 signature")


def _tags(value: Any) -> Mapping[str, Any]:
    """Resend gives tags as an object, or as a list of {name, value}."""
    if isinstance(value, list):
        pairs = (mapping(tag) for tag in value)
        return {tag["name"]: tag.get("value") for tag in pairs if isinstance(tag.get("name"), str)}
    return mapping(value)


class ResendWebhook(WebhookProvider):
    name = "resend"

    def verify(self, settings: Settings, headers: Mapping[str, str], body: bytes) -> Verified:
        if not settings.resend_webhook_secret:
            raise SignatureError("set RESEND_WEBHOOK_SECRET to receive Resend webhooks")
        event_id = verify_svix(headers, body, settings.resend_webhook_secret)
        return Verified(load_json(body), event_id)

    def events_in(self, verified: Verified) -> list[Any]:
        data = verified.data
        if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
            raise PayloadError("a Resend webhook is a JSON object with a data object")
        return [data]

    def normalise(self, item: Any, verified: Verified) -> NormalisedEvent:
        type_name = name(item.get("type"))
        if type_name is None:
            raise Unprocessable("type is missing or is not a name")
        event, detail = item["data"], None
        kind = KINDS.get(type_name, EventKind.OTHER)
        if type_name == "email.bounced":
            bounce = mapping(event.get("bounce"))
            kind = EventKind.BOUNCED if bounce.get("type") == "Permanent" else EventKind.SOFT_BOUNCED
            parts = (text(bounce.get(part)) or "" for part in ("type", "subType", "message"))
            detail = text("{}/{}: {}".format(*parts))
        tags = _tags(event.get("tags"))
        recipients = event.get("to")
        recipient = recipients[0] if isinstance(recipients, list) and recipients else recipients
        return NormalisedEvent(
            provider=self.name,
            event_key=event_key(key_part(verified.request_id, "svix-id")),
            kind=kind,
            recipient=email(recipient),
            occurred_at=moment(item.get("created_at"), datetime.now(UTC)),
            provider_message_id=identifier(event.get("email_id")),
            delivery_id=row_id(tags.get("delivery")),
            issue=text(tags.get("issue"), TAG),
            detail=detail,
        )
