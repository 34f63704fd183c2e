"""Endpoints: adding, listing, enabling, removing; the URLs they may have; how each is doing.

URLs: http or https only, a host, no credentials in them (`user:pass@`: they would sit in the store
and in logs; the signature is the authentication), no fragment, at most 2,000 characters. Private
and loopback addresses are allowed: endpoints are added only from the command line, by someone who
can already run commands on this machine, and on-premises receivers (and the tests' own) live there.
Logs and listings show a URL without its query string, which may carry a receiver's token.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from newsletter.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow
from newsletter.outgoing_webhooks import events
from newsletter.outgoing_webhooks.signing import new_secret, seal

MAX_URL = 2000
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")


class EndpointError(ValueError):
    """A URL, an event list or an endpoint id that cannot be used; the message says why."""


def check_url(url: str) -> str:
    """The URL as stored, or EndpointError naming what is wrong with it (never repeating it whole)."""
    if len(url) > MAX_URL:
        raise EndpointError(f"the URL is longer than {MAX_URL} characters")
    if _CONTROL_OR_SPACE.search(url):
        raise EndpointError("the URL holds a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise EndpointError("the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise EndpointError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise EndpointError(
            "the URL holds credentials (user:password@); leave them out: every request is signed, and "
            "the receiver verifies the signature"
        )
    if parts.fragment or url.endswith("#"):
        raise EndpointError("the URL has a #fragment, which is never sent; leave it out")
    if port == 0:
        raise EndpointError("the URL's port must be 1-65535")
    return url


def shown_url(url: str) -> str:
    """The URL for logs and listings: its query (a receiver's token?) left out."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return shown + ("?…" if parts.query else "")


def parse_events(text: str) -> str:
    """`--events` as stored: `*` for `all`, else the known types, comma-separated, in a fixed order."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise EndpointError("name at least one event, or all")
    if names == ["all"]:
        return events.ALL
    unknown = [name for name in names if name not in events.EVENT_TYPES]
    if unknown:
        raise EndpointError(
            f"unknown event {unknown[0][:60]!r}; use all, or some of: {', '.join(events.EVENT_TYPES)}"
        )
    return ",".join(name for name in events.EVENT_TYPES if name in names)


def shown_events(stored: str) -> str:
    return "all" if stored == events.ALL else stored


def add(session: Session, url: str, event_names: str, *, key: bytes) -> tuple[WebhookEndpoint, str]:
    """A new endpoint, enabled; returns it and its secret (`whsec_...`), which is never shown again."""
    secret = new_secret()
    endpoint = WebhookEndpoint(url=check_url(url), events=parse_events(event_names), secret=seal(secret, key))
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def get(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointError(f"no webhook endpoint {endpoint_id}; `newsletter webhooks list` shows them")
    return endpoint


def rotate(session: Session, endpoint_id: int, *, key: bytes) -> str:
    """A new secret for the endpoint (the old one stops working at once); returns it, once."""
    endpoint = get(session, endpoint_id)
    secret = new_secret()
    endpoint.secret, endpoint.updated_at = seal(secret, key), utcnow()
    session.add(endpoint)
    return secret


def remove(session: Session, endpoint_id: int) -> int:
    """Delete the endpoint, its messages and their attempts; returns how many messages were pending."""
    get(session, endpoint_id)
    pending = session.exec(
        select(func.count()).where(
            WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == "pending"
        )
    ).one()
    session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.endpoint_id) == endpoint_id))
    session.exec(delete(WebhookMessage).where(col(WebhookMessage.endpoint_id) == endpoint_id))
    session.exec(delete(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id))
    return pending


def enable(session: Session, endpoint_id: int) -> int:
    """Enable the endpoint again: its failure clock starts over and its pending messages are due at
    once (in order, as always). Returns how many are pending."""
    endpoint = get(session, endpoint_id)
    now = utcnow()
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = True, None, None
    endpoint.failing_since, endpoint.updated_at = None, now
    session.add(endpoint)
    result = session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.status == "pending")
        .values(next_attempt_at=now)
    )
    return result.rowcount or 0


def disable(
    session: Session, endpoint_id: int, reason: str, *, now: datetime | None = None
) -> WebhookEndpoint:
    """Stop delivering to the endpoint; its events keep queuing until it is enabled or removed."""
    endpoint = get(session, endpoint_id)
    now = now or utcnow()
    endpoint.enabled, endpoint.disabled_at = False, now
    endpoint.disabled_reason, endpoint.updated_at = reason[:500], now
    session.add(endpoint)
    return endpoint


@dataclass(frozen=True)
class EndpointHealth:
    """How an endpoint is doing, for `webhooks list` and the editors' console."""

    id: int
    url: str  # without its query
    events: str
    state: str  # ok | failing | disabled
    created_at: datetime
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    pending: int
    failed: int  # messages given up on (kept for NEWSLETTER_WEBHOOK_RETENTION_DAYS)

    def as_json(self) -> dict:
        return {
            key: events.iso(value) if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }


def endpoint_health(session: Session) -> list[EndpointHealth]:
    """Every endpoint with its state (a disabled one says when and why) and its queue."""
    tallies: dict[tuple[int, str], int] = {
        (endpoint_id, status): count
        for endpoint_id, status, count in session.exec(
            select(WebhookMessage.endpoint_id, WebhookMessage.status, func.count())
            .where(col(WebhookMessage.status).in_(["pending", "failed"]))
            .group_by(WebhookMessage.endpoint_id, WebhookMessage.status)
        )
    }
    health = []
    for endpoint in session.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.id)):
        state = "disabled" if not endpoint.enabled else "failing" if endpoint.failing_since else "ok"
        health.append(
            EndpointHealth(
                id=endpoint.id,
                url=shown_url(endpoint.url),
                events=shown_events(endpoint.events),
                state=state,
                created_at=endpoint.created_at,
                last_success_at=endpoint.last_success_at,
                last_failure_at=endpoint.last_failure_at,
                last_error=endpoint.last_error,
                failing_since=endpoint.failing_since,
                disabled_at=endpoint.disabled_at,
                disabled_reason=endpoint.disabled_reason,
                pending=tallies.get((endpoint.id, "pending"), 0),
                failed=tallies.get((endpoint.id, "failed"), 0),
            )
        )
    return health
