"""Mailgun's webhooks: one JSON object per event, its signature inside the body.

The `signature` object holds a timestamp, a token (unique per request) and the hex HMAC-SHA256 of
timestamp + token under the webhook signing key. The event's own id is its key; without one, the
signed token is, so a replayed request is still a duplicate.
"""

from __future__ import annotations

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
)
from newsletter.events.fields import (
    TAG,
    bot_name,
    email,
    event_key,
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

KINDS = {
    "delivered": EventKind.DELIVERED,
    "complained": EventKind.COMPLAINED,
    "opened": EventKind.OPENED,
    "clicked": EventKind.CLICKED,
    "unsubscribed": EventKind.UNSUBSCRIBED,
}
_TOKEN_MAX = 200
_HEX_SHA256 = 64


def sign_mailgun(signing_key: str, timestamp: int, token: str) -> dict[str, str]:
    digest = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": str(timestamp), "token": token, "signature": digest}


def verify_mailgun(
    signature: Any,
    signing_key: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Verify the body's `signature` object and return its token (unique per request)."""
    signature = mapping(signature)
    token, given = signature.get("token"), signature.get("signature")
    if not (_printable(token) and len(token) <= _TOKEN_MAX and _printable(given)):
        raise SignatureError("missing or malformed signature fields")
    timestamp = signature.get("timestamp")
    fresh(timestamp, now, tolerance)  # whole seconds: signed as written, so compared as written
    if len(given) != _HEX_SHA256:
        raise SignatureError("HMAC does not match")
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError("HMAC does not match")
    return token


def _printable(value: Any) -> bool:
    """Printable ASCII text, as Mailgun's tokens and hex signatures are (and nothing else encodes
    the same way under every codec)."""
    return isinstance(value, str) and bool(value) and value.isascii() and value.isprintable()


class MailgunWebhook(WebhookProvider):
    name = "mailgun"

    def verify(self, settings: Settings, headers: Mapping[str, str], body: bytes) -> Verified:
        if not settings.mailgun_webhook_signing_key:
            raise SignatureError("set MAILGUN_WEBHOOK_SIGNING_KEY to receive Mailgun webhooks")
        payload = load_json(body)
        if not isinstance(payload, dict):
            raise PayloadError("a Mailgun webhook is a JSON object")
        token = verify_mailgun(payload.get("signature"), settings.mailgun_webhook_signing_key)
        return Verified(payload, token)

    def events_in(self, verified: Verified) -> list[Any]:
        data = verified.data
        if not isinstance(data, dict) or not isinstance(data.get("event-data"), dict):
            raise PayloadError("a Mailgun webhook has an event-data object")
        return [data["event-data"]]

    def normalise(self, item: Any, verified: Verified) -> NormalisedEvent:
        event_name = name(item.get("event"))
        if event_name is None:
            raise Unprocessable("event-data.event is missing or is not a name")
        kind = KINDS.get(event_name, EventKind.OTHER)
        detail = None
        if event_name == "failed":
            kind = EventKind.BOUNCED if item.get("severity") == "permanent" else EventKind.SOFT_BOUNCED
            status = mapping(item.get("delivery-status"))
            reason = text(status.get("message")) or text(status.get("description")) or ""
            detail = text(f"{text(item.get('reason')) or ''}: {reason}")
        variables = mapping(item.get("user-variables"))
        headers = mapping(mapping(item.get("message")).get("headers"))
        own_id = optional_key_part(item.get("id"))
        return NormalisedEvent(
            provider=self.name,
            event_key=event_key(own_id or key_part(verified.request_id, "signature.token")),
            kind=kind,
            recipient=email(item.get("recipient")),
            occurred_at=moment(item.get("timestamp"), datetime.now(UTC)),
            provider_message_id=identifier(headers.get("message-id")),
            delivery_id=row_id(variables.get("delivery")),
            issue=text(variables.get("issue"), TAG),
            detail=detail,
            machine=bot_name(mapping(item.get("client-info")).get("bot"))
            if kind in (EventKind.OPENED, EventKind.CLICKED)
            else None,
        )
