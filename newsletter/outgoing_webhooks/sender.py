"""Delivering the outbox: claims, the signed request, retries with back-off, disabling, pruning.

`deliver_due` is what the scheduler (every NEWSLETTER_WEBHOOK_INTERVAL_SECONDS), the sender workers
(between polls) and `newsletter webhooks deliver` (at once) run. Any number of them at once:

* a batch of due messages is claimed under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite
  has one writer) and committed before any request goes out; a lease whose holder died (SIGKILL)
  is taken over when it runs out, or at once when the holder was a process on this machine;
* a message is due only when no earlier message about the same subject (a reader, an issue) is
  still pending for that endpoint: an endpoint gets a reader's events one at a time, in order, and
  a retried message holds back the later ones behind it;
* success is a 2xx answer within NEWSLETTER_WEBHOOK_TIMEOUT; anything else (3xx too: redirects are
  not followed) is a failure, retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and
  24 h (the specification's schedule, 3 days and 3 hours in all, each delay ±20 % jitter, never
  sooner than a Retry-After), then given up (`failed`, logged);
* an endpoint that fails is probed with one message per round until one succeeds, so a receiver that
  is down gets one request every few seconds, not its whole queue; after
  NEWSLETTER_WEBHOOK_DISABLE_HOURS without a success (or at once on `410 Gone`) it is disabled,
  with a warning in the log, and its messages wait for `newsletter webhooks enable`;
* every attempt is logged (`WebhookAttempt`: time, status, duration, error, the start of the answer).

A process killed between its request and the commit of the answer leaves the message pending: it is
sent again under the same `webhook-id`, which receivers use to drop duplicates (the specification's
idempotency key). Nothing is ever lost.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, exists, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, utcnow
from newsletter.outgoing_webhooks import events
from newsletter.outgoing_webhooks.endpoints import disable, get, shown_url
from newsletter.outgoing_webhooks.signing import SecretUnreadable, new_message_id, signature, unseal
from newsletter.send_lease import alive as holder_alive  # one rule for "a dead process on this machine"
from newsletter.send_lease import sender_identity

log = logging.getLogger("newsletter.webhooks")
RETRY_DELAYS = (5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400)  # seconds, after each failure
JITTER = 0.2
BATCH = 50
CONCURRENCY = 8
RESPONSE_CHARS = 500
USER_AGENT = "newsletter-webhooks/1"


@dataclass(frozen=True)
class Due:
    """A claimed message, with what its request needs."""

    message_id: int | None  # None: a `webhooks test`
    endpoint_id: int
    msg_id: str
    payload: str
    url: str
    sealed_secret: str


@dataclass
class Outcome:
    due: Due
    at: datetime
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    duration_ms: int = 0
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.status_code is not None and 300 <= self.status_code < 400:
            return f"answered {self.status_code} (a redirect, not followed: update the endpoint's URL)"
        return f"answered {self.status_code}"


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0  # attempts that failed (retried later)
    gave_up: int = 0
    disabled: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # "endpoint N: why" -> attempts

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed


def make_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        timeout=settings.webhook_timeout,
        follow_redirects=False,
        limits=httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY),
        headers={"user-agent": USER_AGENT},
    )


def deliver_due(
    engine: Engine,
    settings: Settings,
    *,
    limit: int = 1000,
    client: httpx.Client | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Deliver what is due now, at most `limit` attempts, batch after batch; returns what happened."""
    key = settings.signing_key()
    me = sender_identity()
    report = DeliveryReport()
    own = client is None
    client = client or make_client(settings)
    try:
        resting: set[int] = set()  # endpoints that failed in this run: not tried again in it
        with ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="webhook") as pool:
            while report.attempted < limit and not (stop is not None and stop.is_set()):
                size = min(BATCH, limit - report.attempted)
                batch = claim(engine, me, size, lease_seconds(settings), skip=resting)
                if not batch:
                    break
                outcomes = list(pool.map(lambda due: post(client, due, key), batch))
                record(engine, settings, me, outcomes, report)
                resting |= {outcome.due.endpoint_id for outcome in outcomes if not outcome.ok}
    finally:
        if own:
            client.close()
    return report


def lease_seconds(settings: Settings) -> float:
    return settings.webhook_timeout + 60


def claim(engine: Engine, me: str, size: int, lease: float, skip: set[int] | None = None) -> list[Due]:
    """The next due messages, leased to `me` and committed: at most one per (endpoint, subject),
    the head of its line; and for an endpoint that is failing, one message in all (a probe).
    Endpoints in `skip` are left alone."""
    now = utcnow()
    host = socket.gethostname()
    earlier = aliased(WebhookMessage)
    blocked = exists().where(
        earlier.endpoint_id == WebhookMessage.endpoint_id,
        earlier.subject == WebhookMessage.subject,
        earlier.id < WebhookMessage.id,
        earlier.status == "pending",
    )
    query = (
        select(
            WebhookMessage.id,
            WebhookMessage.endpoint_id,
            WebhookMessage.msg_id,
            WebhookMessage.payload,
            WebhookMessage.lease_until,
            WebhookMessage.claimed_by,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
            WebhookEndpoint.failing_since,
        )
        .join(WebhookEndpoint, col(WebhookEndpoint.id) == WebhookMessage.endpoint_id)
        .where(
            WebhookMessage.status == "pending",
            col(WebhookEndpoint.enabled).is_(True),
            col(WebhookMessage.next_attempt_at) <= now,
            or_(
                col(WebhookMessage.lease_until).is_(None),
                col(WebhookMessage.lease_until) < now,
                col(WebhookMessage.claimed_by).startswith(
                    f"{host}:", autoescape=True
                ),  # perhaps a dead process here
            ),
            ~blocked,
        )
        .order_by(WebhookMessage.next_attempt_at, WebhookMessage.id)
        .limit(size * 4)
        .with_for_update(skip_locked=True, of=WebhookMessage)
    )
    with session_scope(engine) as session:
        taken: list[Due] = []
        probing: set[int] = set()
        alive: dict[str, bool] = {}
        for row in session.exec(query):
            message_id, endpoint_id, msg_id, payload, until, holder, url, secret, failing = row
            if (
                until is not None
                and until >= now
                and holder
                and alive.setdefault(holder, holder_alive(holder))
            ):
                continue  # in flight with a live process
            if skip and endpoint_id in skip:
                continue
            if failing is not None:
                if endpoint_id in probing:
                    continue
                probing.add(endpoint_id)
            taken.append(Due(message_id, endpoint_id, msg_id, payload, url, secret))
            if len(taken) >= size:
                break
        if taken:
            session.execute(
                update(WebhookMessage)
                .where(col(WebhookMessage.id).in_([due.message_id for due in taken]))
                .values(lease_until=now + timedelta(seconds=lease), claimed_by=me)
            )
    return taken


def post(client: httpx.Client, due: Due, key: bytes) -> Outcome:
    """One signed request; never raises (a failure is an outcome). The body is read up to
    RESPONSE_CHARS: a receiver cannot make us hold its whole answer."""
    outcome = Outcome(due, at=utcnow())
    try:
        secret = unseal(due.sealed_secret, key)
    except SecretUnreadable as exc:
        outcome.error = str(exc)
        return outcome
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": due.msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, due.msg_id, timestamp, due.payload),
    }
    started = time.perf_counter()
    try:
        with client.stream("POST", due.url, content=due.payload.encode(), headers=headers) as response:
            outcome.status_code = response.status_code
            outcome.retry_after = _retry_after(response.headers.get("retry-after"))
            outcome.response = _read_bounded(response)
    except httpx.TimeoutException:
        outcome.error = f"no answer within {client.timeout.read:g} s"
    except httpx.HTTPError as exc:
        outcome.error = _one_line(f"{type(exc).__name__}: {exc}".replace(due.url, shown_url(due.url)))
    outcome.duration_ms = int((time.perf_counter() - started) * 1000)
    return outcome


def _read_bounded(response: httpx.Response) -> str:
    raw = b""
    for chunk in response.iter_raw():
        raw += chunk
        if len(raw) >= RESPONSE_CHARS * 4:
            break
    return _one_line(raw.decode("utf-8", errors="replace"))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:RESPONSE_CHARS]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the date form is not worth its parser here), at most a day."""
    if value and value.strip().isdigit():
        return min(float(value.strip()), 86_400.0)
    return None


def next_delay(attempts: int, retry_after: float | None, rng: random.Random) -> float | None:
    """Seconds until the next try after `attempts` failures; None when the schedule is spent."""
    if attempts > len(RETRY_DELAYS):
        return None
    delay = RETRY_DELAYS[attempts - 1] * rng.uniform(1 - JITTER, 1 + JITTER)
    return max(delay, retry_after or 0.0)


_rng = random.Random()  # noqa: S311  (jitter, not secrets)


def record(
    engine: Engine, settings: Settings, me: str, outcomes: list[Outcome], report: DeliveryReport
) -> None:
    """Every outcome in one transaction: the attempt log, the message's new state, the endpoint's."""
    with session_scope(engine) as session, session.no_autoflush:
        message_ids = [outcome.due.message_id for outcome in outcomes]
        stored = {
            m.id: m
            for m in session.exec(select(WebhookMessage).where(col(WebhookMessage.id).in_(message_ids)))
        }
        endpoint_ids = {outcome.due.endpoint_id for outcome in outcomes}
        hooks = {
            e.id: e
            for e in session.exec(select(WebhookEndpoint).where(col(WebhookEndpoint.id).in_(endpoint_ids)))
        }
        for outcome in outcomes:
            endpoint = hooks.get(outcome.due.endpoint_id)
            message = stored.get(outcome.due.message_id)
            if endpoint is None or message is None:
                continue  # removed while the request was out
            session.add(_attempt(outcome))
            now = utcnow()
            mine = message.status == "pending" and message.claimed_by == me
            if outcome.ok:
                report.delivered += 1
                endpoint.last_success_at, endpoint.failing_since, endpoint.updated_at = now, None, now
                if mine:
                    message.status, message.delivered_at, message.last_error = "delivered", now, None
                    message.attempts += 1
            else:
                report.failed += 1
                why = outcome.describe()
                report.errors[f"endpoint {endpoint.id}: {why[:120]}"] += 1
                if mine:
                    _failed(message, outcome, why, report)
                _endpoint_failed(session, settings, endpoint, outcome, why, now, report)
            if mine:
                message.lease_until = message.claimed_by = None
                session.add(message)
            session.add(endpoint)


def _attempt(outcome: Outcome) -> WebhookAttempt:
    return WebhookAttempt(
        endpoint_id=outcome.due.endpoint_id,
        message_id=outcome.due.message_id,
        at=outcome.at,
        status_code=outcome.status_code,
        duration_ms=outcome.duration_ms,
        error=outcome.error[:500] if outcome.error else None,
        response=outcome.response[:500] if outcome.response else None,
    )


def _failed(message: WebhookMessage, outcome: Outcome, why: str, report: DeliveryReport) -> None:
    message.attempts += 1
    message.last_error = why[:500]
    delay = next_delay(message.attempts, outcome.retry_after, _rng)
    if delay is None:
        message.status = "failed"
        report.gave_up += 1
        log.warning(
            "webhook %s (%s) to endpoint %d given up after %d attempts over three days: %s",
            message.msg_id,
            message.type,
            message.endpoint_id,
            message.attempts,
            why,
        )
    else:
        message.next_attempt_at = utcnow() + timedelta(seconds=delay)


def _endpoint_failed(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    outcome: Outcome,
    why: str,
    now: datetime,
    report: DeliveryReport,
) -> None:
    endpoint.last_failure_at, endpoint.last_error, endpoint.updated_at = now, why[:500], now
    endpoint.failing_since = endpoint.failing_since or now
    if not endpoint.enabled:
        return
    if outcome.status_code == 410:
        reason = "the receiver answered 410 Gone: it wants no more webhooks"
    elif now - endpoint.failing_since >= timedelta(hours=settings.webhook_disable_hours):
        reason = f"failing since {events.iso(endpoint.failing_since)} without a success; last: {why}"
    else:
        return
    disable(session, endpoint.id, reason, now=now)
    report.disabled.append(f"endpoint {endpoint.id} ({shown_url(endpoint.url)})")
    log.warning(
        "webhook endpoint %d (%s) DISABLED: %s. Its events wait; fix the receiver, then "
        "`newsletter webhooks enable %d`.",
        endpoint.id,
        shown_url(endpoint.url),
        reason,
        endpoint.id,
    )


def send_test(
    engine: Engine, settings: Settings, endpoint_id: int, client: httpx.Client | None = None
) -> Outcome:
    """A signed `webhook.test` event to one endpoint at once (enabled or not), logged as an attempt
    without a message; nothing is queued and the endpoint's health is left as it is."""
    with session_scope(engine) as session:
        endpoint = get(session, endpoint_id)
        at = utcnow()
        body = events.envelope(
            events.TEST, {"endpoint": endpoint.id, "note": "a test from newsletter webhooks test"}, at
        )
        due = Due(None, endpoint.id, new_message_id(), body, endpoint.url, endpoint.secret)
    own = client is None
    client = client or make_client(settings)
    try:
        outcome = post(client, due, settings.signing_key())
    finally:
        if own:
            client.close()
    with session_scope(engine) as session:
        session.add(_attempt(outcome))
    return outcome


def prune(engine: Engine, settings: Settings, now: datetime | None = None) -> tuple[int, int]:
    """Delivered and given-up messages, and attempts, older than NEWSLETTER_WEBHOOK_RETENTION_DAYS
    are deleted; returns (messages, attempts). Pending messages stay, however old."""
    cutoff = (now or utcnow()) - timedelta(days=settings.webhook_retention_days)
    old = select(WebhookMessage.id).where(
        col(WebhookMessage.status).in_(["delivered", "failed"]), col(WebhookMessage.created_at) < cutoff
    )
    with session_scope(engine) as session:
        attempts = session.execute(
            delete(WebhookAttempt).where(
                or_(
                    col(WebhookAttempt.at) < cutoff, col(WebhookAttempt.message_id).in_(old.scalar_subquery())
                )
            )
        ).rowcount
        messages = session.execute(
            delete(WebhookMessage).where(col(WebhookMessage.id).in_(old.scalar_subquery()))
        ).rowcount
    return messages or 0, attempts or 0
