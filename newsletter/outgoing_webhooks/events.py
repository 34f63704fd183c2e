"""The event types, which reader event becomes which, and the payloads (plain data, no store).

Payloads follow the Standard Webhooks shape, `{"type", "timestamp", "data"}`, and are small and
bounded: every free text is cut, and nothing in them signs anything (no reader token, no secret).
A reader is `{"id", "email", "status", ...}`: receivers key readers by `id`, which stays when the
address is erased; `subscriber.erased` carries the id alone, and the address is blanked in every
stored message about that reader.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

PENDING = "subscriber.pending"
CONFIRMED = "subscriber.confirmed"
UNSUBSCRIBED = "subscriber.unsubscribed"
BOUNCED = "subscriber.bounced"
COMPLAINED = "subscriber.complained"
ERASED = "subscriber.erased"
VOTE_RECORDED = "vote.recorded"
ISSUE_SENT = "issue.sent"
TEST = "webhook.test"  # `newsletter webhooks test`: sent at once, never stored

EVENT_TYPES = (PENDING, CONFIRMED, UNSUBSCRIBED, BOUNCED, COMPLAINED, ERASED, VOTE_RECORDED, ISSUE_SENT)
ALL = "*"

# A reader event (SubscriberEvent.kind) -> (webhook type, the state the reader must be in after it).
# Mapped by kind, so every writer of a kind is covered: the web pages, provider events, the sender's
# permanent failures, `subscribers add` and CSV imports, and any later one (a sunset, another import).
# The state guard drops events that change nothing: a signup by an active reader, or by one who left
# (they stay left until they confirm, which sends `subscriber.confirmed`).
KINDS: dict[str, tuple[str, str | None]] = {
    "signup_requested": (PENDING, "pending"),
    "subscribed": (CONFIRMED, "active"),  # added as active by the list owner
    "confirmed": (CONFIRMED, "active"),
    "unsubscribed": (UNSUBSCRIBED, None),
    "sunset": (UNSUBSCRIBED, None),  # taken off the list for not reading
    "suppressed": (UNSUBSCRIBED, None),  # an imported export says they left (unsubscribed, cleaned, ...)
    "bounced": (BOUNCED, None),
    "complained": (COMPLAINED, None),
    "erased": (ERASED, None),
}

MAX_TEXT = 500  # a reason (a bounce message) is cut to this
MAX_PAYLOAD_BYTES = 16_384  # far above what any payload here needs; the spec advises under 20 KB


def subscriber_type(kind: str, status: str | None) -> str | None:
    """The webhook type a reader event of `kind` becomes, given the reader's state after it; None
    when it is not one (a pause, a change of categories, a confirmation email sent)."""
    mapped = KINDS.get(kind)
    if mapped is None:
        return None
    event_type, required = mapped
    return event_type if required is None or status == required else None


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cut(text: str | None, limit: int = MAX_TEXT) -> str | None:
    return None if text is None else text[:limit]


def reader(
    subscriber_id: int,
    email: str | None,
    status: str | None,
    *,
    source: str | None = None,
    created_at: datetime | None = None,
    confirmed_at: datetime | None = None,
) -> dict[str, Any]:
    """A reader as every payload shows one. An erased reader is their id and state alone."""
    if status == "erased":
        return {"id": subscriber_id, "status": "erased"}
    return {
        "id": subscriber_id,
        "email": email,
        "status": status,
        "source": cut(source, 40),
        "created_at": iso(created_at),
        "confirmed_at": iso(confirmed_at),
    }


def subscriber_data(
    event_type: str,
    who: dict[str, Any],
    *,
    source: str,
    detail: str | None,
    issue: str | None,
) -> dict[str, Any]:
    """`data` of a subscriber.* event: the reader, where the change came from, the issue whose link
    (or List-Unsubscribe header) it came through, and for a bounce or complaint the provider's reason."""
    data: dict[str, Any] = {"subscriber": who, "source": cut(source, 40)}
    if issue is not None:
        data["issue"] = issue
    if event_type in (BOUNCED, COMPLAINED) and detail:
        data["reason"] = cut(detail)
    return data


def envelope(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The body as sent: compact JSON, `{"type", "timestamp", "data"}`, bounded."""
    body = json.dumps(
        {"type": event_type, "timestamp": iso(at), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    if len(body.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a {event_type} payload of {len(body.encode())} bytes is over {MAX_PAYLOAD_BYTES}")
    return body


def without_email(payload: str) -> str:
    """The payload with the reader's address blanked (after the reader was erased)."""
    document = json.loads(payload)
    who = document.get("data", {}).get("subscriber")
    if isinstance(who, dict) and who.get("email"):
        who["email"] = None
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
