"""SendGrid's signed event webhook: a JSON array of events per request, signed with ECDSA P-256 over
the timestamp header and the raw body; the public key is configured as SendGrid shows it (base64 DER).

One bad event in the array is unprocessable on its own: the others of the batch are stored.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
    flag,
    identifier,
    key_part,
    load_json,
    moment,
    name,
    optional_key_part,
    row_id,
    text,
)
from newsletter.models import EventKind

if TYPE_CHECKING:
    from newsletter.config import Settings

SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"

KINDS = {
    "delivered": EventKind.DELIVERED,
    "deferred": EventKind.DEFERRED,
    "open": EventKind.OPENED,
    "click": EventKind.CLICKED,
    "spamreport": EventKind.COMPLAINED,
    "unsubscribe": EventKind.UNSUBSCRIBED,
    "group_unsubscribe": EventKind.UNSUBSCRIBED,
    "dropped": EventKind.BOUNCED,
}


def new_sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair: the private key (to sign, in tests and the emulator) and the public key as
    SendGrid shows it (base64 DER)."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def sign_sendgrid(body: bytes, private_key: ec.EllipticCurvePrivateKey, timestamp: int) -> dict[str, str]:
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: str(timestamp)}


def verify_sendgrid(
    headers: Mapping[str, str],
    body: bytes,
    public_key_b64: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    signature, timestamp = header(headers, SIGNATURE_HEADER), header(headers, TIMESTAMP_HEADER)
    fresh(timestamp, now, tolerance)
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError("ECDSA signature does not verify") from exc


class SendGridWebhook(WebhookProvider):
    name = "sendgrid"

    def verify(self, settings: Settings, headers: Mapping[str, str], body: bytes) -> Verified:
        if not settings.sendgrid_webhook_public_key:
            raise SignatureError("set SENDGRID_WEBHOOK_PUBLIC_KEY to receive SendGrid webhooks")
        verify_sendgrid(headers, body, settings.sendgrid_webhook_public_key)
        return Verified(load_json(body))

    def events_in(self, verified: Verified) -> list[Any]:
        if not isinstance(verified.data, list):
            raise PayloadError("a SendGrid event webhook posts a JSON array")
        return verified.data

    def normalise(self, item: Any, verified: Verified) -> NormalisedEvent:
        if not isinstance(item, dict):
            raise Unprocessable("is not a JSON object")
        event_name = name(item.get("event"))
        if event_name is None:
            raise Unprocessable("event is missing or is not a name")
        kind = KINDS.get(event_name, EventKind.OTHER)
        if event_name == "bounce":
            kind = EventKind.SOFT_BOUNCED if item.get("type") == "blocked" else EventKind.BOUNCED
        sg_message_id = item.get("sg_message_id")
        message_id = sg_message_id.split(".", 1)[0] if isinstance(sg_message_id, str) else None
        event_id = optional_key_part(item.get("sg_event_id"))
        if event_id:
            key = event_key(event_id)
        else:  # older events had no id: what tells them apart is the message and the second
            key = event_key(
                event_name,
                key_part(sg_message_id, "sg_event_id, and so sg_message_id,"),
                key_part(item.get("timestamp"), "sg_event_id, and so timestamp,"),
            )
        return NormalisedEvent(
            provider=self.name,
            event_key=key,
            kind=kind,
            recipient=email(item.get("email")),
            occurred_at=moment(item.get("timestamp"), datetime.now(UTC)),
            provider_message_id=identifier(message_id),
            delivery_id=row_id(item.get("delivery")),
            issue=text(item.get("issue"), TAG),
            detail=text(item.get("reason")) or text(item.get("url")),
            # Apple Mail Privacy Protection's fetch of the open pixel, by SendGrid's own judgement
            machine=flag(item.get("sg_machine_open")) if kind == EventKind.OPENED else None,
        )
