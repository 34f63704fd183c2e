"""The redirect's side of tracking: resolve a token to a link of the issue, queue the hit, and write
hits in batches, judged by the rules of `classify`.

The redirect never waits for the store. `LinkResolver.resolve` checks the token's two MACs (no
database) and finds the link in a per-process cache of the issue link table (one read per link per
process). `HitRecorder.record` appends to an in-memory queue; a background task hands the queue to a
thread in batches, and each batch is one short transaction: the hits of readers who turned tracking
off or were erased are dropped, the rest inserted with `executemany`, and every reader's hits near the
new ones are judged again (a burst or a decoy hit changes the verdict of hits before it). A burst of
scanner traffic is many small transactions, never one long one, so the signup form's writes wait at
most one batch. The queue is flushed when the app shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from newsletter.db import session_scope
from newsletter.models import (
    Delivery,
    EventKind,
    IssueLink,
    LinkHit,
    ProviderEvent,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import Signer, TokenError
from newsletter.tracking.classify import CLICK, OPEN, Hit, Rules, classify
from newsletter.tracking.links import BadLink, LinkKind, LinkSigner, parse

log = logging.getLogger("newsletter.tracking")
READER_PURPOSE = "reader"
CACHE_LINKS = 20_000
BATCH_HITS = 250  # one transaction: a few milliseconds on SQLite, so the signup form never waits long
FLUSH_SECONDS = 0.2
MAX_PENDING = 500_000  # a store that is down for long: keep this many, then drop (and say so)


@dataclass(frozen=True, slots=True)
class Target:
    """What a valid tracked token names."""

    issue_id: int
    subscriber_id: int
    link_id: int
    kind: str
    url: str


class LinkResolver:
    """Tracked tokens to links of their issue; BadLink for anything else."""

    def __init__(self, engine: Engine, key: bytes):
        self.engine = engine
        self.readers = Signer(key)
        self.links = LinkSigner(key)
        self._cache: dict[tuple[int, str], tuple[int, str, str] | None] = {}

    def resolve(self, token: str) -> Target:
        parsed = parse(token)
        try:  # expired is fine: the link leads to a public page (its hit is still the reader's)
            claims = self.readers.verify(parsed.reader_token, READER_PURPOSE, allow_expired=True)
        except TokenError as exc:
            raise BadLink(exc.reason) from exc
        if not self.links.matches(parsed, claims.expires_at):
            raise BadLink("invalid")  # tampered, or a reader token from another issue
        link = self._link(parsed.issue_id, parsed.code)
        if link is None:
            raise BadLink("unknown")
        link_id, kind, url = link
        return Target(parsed.issue_id, claims.subject, link_id, kind, url)

    def _link(self, issue_id: int, code: str) -> tuple[int, str, str] | None:
        key = (issue_id, code)
        if key in self._cache:
            return self._cache[key]
        with session_scope(self.engine) as session:
            row = session.execute(
                select(IssueLink.id, IssueLink.kind, IssueLink.url).where(
                    IssueLink.issue_id == issue_id, IssueLink.code == code
                )
            ).first()
        if len(self._cache) >= CACHE_LINKS:
            self._cache.clear()
        found = (row[0], row[1], row[2]) if row else None
        if found is not None:  # a link not (yet) registered is looked up again next time
            self._cache[key] = found
        return found


@dataclass(frozen=True, slots=True)
class PendingHit:
    issue_id: int
    subscriber_id: int
    link_id: int
    kind: str
    at: datetime
    method: str
    agent: str
    prefetch: bool
    client_hash: str | None


def client_hasher(key: bytes):
    """A keyed hash of client addresses: the same address gives the same hash (scanner networks
    show), but it cannot be reversed by hashing every address."""
    derived = hashlib.sha256(b"newsletter/hit-clients/v1\x00" + key).digest()

    def digest(address: str | None) -> str | None:
        if not address:
            return None
        return hmac.new(derived, address.encode(), hashlib.sha256).hexdigest()[:32]

    return digest


class HitRecorder:
    """Queues hits from the redirect and writes them in batches from a background task."""

    def __init__(
        self, engine: Engine, rules: Rules, *, batch: int = BATCH_HITS, interval: float = FLUSH_SECONDS
    ):
        self.engine = engine
        self.rules = rules
        self.batch = batch
        self.interval = interval
        self.pending: deque[PendingHit] = deque()
        self.dropped = 0  # hits dropped because the queue was full
        self.written = 0
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def record(self, hit: PendingHit) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.error("the hit queue is full (%d): %d hits dropped so far", MAX_PENDING, self.dropped)
            return
        self.pending.append(hit)
        if len(self.pending) >= self.batch:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop the background task and write everything still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        while self.pending:
            batch = [self.pending.popleft() for _ in range(min(self.batch, len(self.pending)))]
            try:
                self.written += await asyncio.to_thread(self.write, batch)
            except Exception as exc:
                if isinstance(exc, OperationalError):  # the store is down or busy: expected, one line
                    reason = str(exc.orig or exc).strip().splitlines()[:1] or [type(exc).__name__]
                    log.error("could not store %d hits (%s); trying again shortly", len(batch), reason[0])
                else:
                    log.exception("could not store %d hits; trying again shortly", len(batch))
                self.pending.extendleft(reversed(batch))
                raise

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                await asyncio.sleep(1.0)

    def write(self, batch: list[PendingHit]) -> int:
        """Store one batch in one transaction; returns how many hits were stored."""
        with session_scope(self.engine) as session:
            return store_hits(session, batch, self.rules)


def store_hits(session: Session, batch: list[PendingHit], rules: Rules) -> int:
    """Insert the hits of readers who still want tracking, each with its verdict, and judge again
    the hits of the same readers near them."""
    ids = {hit.subscriber_id for hit in batch}
    wanted = set(
        session.scalars(
            select(Subscriber.id).where(
                Subscriber.id.in_(ids),
                Subscriber.tracking.is_(True),
                Subscriber.status != SubscriberStatus.ERASED,
            )
        )
    )
    kept = [hit for hit in batch if hit.subscriber_id in wanted]
    by_issue: dict[int, list[PendingHit]] = defaultdict(list)
    for hit in kept:
        by_issue[hit.issue_id].append(hit)
    for issue_id, hits in by_issue.items():
        _store_issue_hits(session, issue_id, hits, rules)
    return len(kept)


def _store_issue_hits(session: Session, issue_id: int, new: list[PendingHit], rules: Rules) -> None:
    readers = {hit.subscriber_id for hit in new}
    earliest = min(hit.at for hit in new)
    since = earliest - timedelta(seconds=2 * rules.reach)
    settled = earliest - timedelta(seconds=rules.reach)  # before this, a verdict cannot change
    old = _hits_near(session, issue_id, readers, since)
    delivered = delivery_times(session, issue_id, readers)
    rows, changed = [], []
    for reader in readers:
        theirs_new = [hit for hit in new if hit.subscriber_id == reader]
        theirs_old = old.get(reader, [])
        hits = [
            _rule_hit(row.at, row.link_id, row.kind, row.method, row.agent, row.prefetch)
            for row in theirs_old
        ]
        hits += [_rule_hit(h.at, h.link_id, h.kind, h.method, h.agent, h.prefetch) for h in theirs_new]
        verdicts = classify(hits, delivered.get(reader), rules)
        for row, verdict in zip(theirs_old, verdicts, strict=False):
            if row.at >= settled and (row.machine, row.reason) != (verdict.machine, verdict.reason):
                changed.append({"id": row.id, "machine": verdict.machine, "reason": verdict.reason})
        for hit, verdict in zip(theirs_new, verdicts[len(theirs_old) :], strict=True):
            rows.append(
                {
                    "issue_id": hit.issue_id,
                    "subscriber_id": hit.subscriber_id,
                    "link_id": hit.link_id,
                    "at": hit.at,
                    "method": hit.method,
                    "agent": hit.agent,
                    "prefetch": hit.prefetch,
                    "client_hash": hit.client_hash,
                    "machine": verdict.machine,
                    "reason": verdict.reason,
                }
            )
    if rows:
        session.execute(LinkHit.__table__.insert(), rows)
    _set_verdicts(session, changed)


_HITS = LinkHit.__table__
_SET_VERDICT = (
    _HITS.update()
    .where(_HITS.c.id == bindparam("hit"))
    .values(machine=bindparam("is_machine"), reason=bindparam("why"))
)


def _set_verdicts(session: Session, changed: list[dict]) -> None:
    """New verdicts for stored hits, by id, in one executemany (Core: no ORM bookkeeping)."""
    if changed:
        session.connection().execute(
            _SET_VERDICT, [{"hit": c["id"], "is_machine": c["machine"], "why": c["reason"]} for c in changed]
        )


@dataclass(frozen=True, slots=True)
class _Stored:
    id: int
    at: datetime
    link_id: int
    kind: str
    method: str
    agent: str
    prefetch: bool
    machine: bool
    reason: str


def _hits_near(
    session: Session, issue_id: int, readers: set[int], since: datetime
) -> dict[int, list[_Stored]]:
    query = (
        select(
            LinkHit.subscriber_id,
            LinkHit.id,
            LinkHit.at,
            LinkHit.link_id,
            IssueLink.kind,
            LinkHit.method,
            LinkHit.agent,
            LinkHit.prefetch,
            LinkHit.machine,
            LinkHit.reason,
        )
        .join(IssueLink, IssueLink.id == LinkHit.link_id)
        .where(LinkHit.issue_id == issue_id, LinkHit.subscriber_id.in_(readers), LinkHit.at >= since)
    )
    found: dict[int, list[_Stored]] = defaultdict(list)
    for reader, *rest in session.execute(query):
        found[reader].append(_Stored(*rest))
    return found


def delivery_times(session: Session, issue_id: int, readers: set[int] | None = None) -> dict[int, float]:
    """When each reader's message arrived: the provider's `delivered` event where there is one (the
    moment the receiving server took it, when its scanners start), else when it was handed over."""
    sent = select(Delivery.subscriber_id, Delivery.sent_at).where(
        Delivery.issue_id == issue_id, Delivery.sent_at.is_not(None)
    )
    arrived = (
        select(ProviderEvent.subscriber_id, func.min(ProviderEvent.occurred_at))
        .where(ProviderEvent.issue_id == issue_id, ProviderEvent.kind == EventKind.DELIVERED)
        .group_by(ProviderEvent.subscriber_id)
    )
    if readers is not None:
        sent = sent.where(Delivery.subscriber_id.in_(readers))
        arrived = arrived.where(ProviderEvent.subscriber_id.in_(readers))
    times = {reader: moment.timestamp() for reader, moment in session.execute(sent)}
    for reader, moment in session.execute(arrived):
        if reader is not None and moment is not None:
            times[reader] = _as_utc(moment).timestamp()
    return times


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rule_hit(at: datetime, link_id: int, kind: str, method: str, agent: str, prefetch: bool) -> Hit:
    return Hit(
        at=at.timestamp(),
        link=str(link_id),
        kind=OPEN if kind == LinkKind.OPEN else CLICK,
        method=method,
        agent=agent,
        prefetch=prefetch,
        decoy=kind == LinkKind.DECOY,
    )


def relabel_issue(session: Session, issue_id: int, rules: Rules) -> int:
    """Judge every stored hit of the issue again (after a provider's late `delivered` event, or a
    change of the rules); returns how many verdicts changed."""
    readers = set(
        session.scalars(select(LinkHit.subscriber_id).where(LinkHit.issue_id == issue_id).distinct())
    )
    if not readers:
        return 0
    hits = _hits_near(session, issue_id, readers, datetime(2000, 1, 1, tzinfo=UTC))
    delivered = delivery_times(session, issue_id)
    changed = []
    for reader, rows in hits.items():
        verdicts = classify(
            [_rule_hit(r.at, r.link_id, r.kind, r.method, r.agent, r.prefetch) for r in rows],
            delivered.get(reader),
            rules,
        )
        changed += [
            {"id": row.id, "machine": verdict.machine, "reason": verdict.reason}
            for row, verdict in zip(rows, verdicts, strict=True)
            if (row.machine, row.reason) != (verdict.machine, verdict.reason)
        ]
    _set_verdicts(session, changed)
    return len(changed)


def wanted_by(settings, kind: str) -> bool:
    """Whether NEWSLETTER_TRACKING stores hits of this kind of link at all."""
    if settings.tracking == "off":
        return False
    return kind != LinkKind.OPEN or settings.tracking == "clicks+opens"


__all__ = ["HitRecorder", "LinkResolver", "PendingHit", "Target", "client_hasher", "wanted_by"]
