"""Raw hits are kept NEWSLETTER_HIT_RETENTION_DAYS, then folded into per-issue, per-link counts.

The scheduler's `retention` job runs `fold_old_hits` daily. Per issue, in one transaction: every
stored hit of the issue is judged again (a provider's `delivered` event that came after the hits
moves the delivery-window rule), then the hits past the cutoff are added to `linkcount` (per link:
human hits and machine hits, which name no reader) and deleted. Which readers clicked a link as a
person is kept as that fact alone in `foldedclick` (issue, reader, link: no time, agent or client),
so a reader whose clicks fall on both sides of a cut, or into two folds, is still one reader: the
report's unique human readers are the same before and after any fold. Erasing a reader deletes their
rows there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.db import session_scope
from newsletter.models import FoldedClick, LinkCount, LinkHit, utcnow
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import relabel_issue


@dataclass
class Folded:
    issues: int = 0
    hits: int = 0
    relabelled: int = 0


def fold_old_hits(engine: Engine, settings, now: datetime | None = None) -> Folded:
    cutoff = (now or utcnow()) - timedelta(days=settings.hit_retention_days)
    rules = Rules.from_settings(settings)
    with session_scope(engine) as session:
        issues = list(session.scalars(select(LinkHit.issue_id).where(LinkHit.at < cutoff).distinct()))
    done = Folded()
    for issue_id in issues:
        with session_scope(engine) as session:
            done.relabelled += relabel_issue(session, issue_id, rules)
            done.hits += _fold(session, issue_id, cutoff)
            done.issues += 1
    return done


def _fold(session: Session, issue_id: int, cutoff: datetime) -> int:
    old = (LinkHit.issue_id == issue_id, LinkHit.at < cutoff)
    per_link = session.execute(
        select(LinkHit.link_id, LinkHit.machine, func.count())
        .where(*old)
        .group_by(LinkHit.link_id, LinkHit.machine)
    ).all()
    clickers = set(
        session.execute(
            select(LinkHit.subscriber_id, LinkHit.link_id).where(*old, LinkHit.machine.is_(False)).distinct()
        ).all()
    )
    known = set(
        session.execute(
            select(FoldedClick.subscriber_id, FoldedClick.link_id).where(FoldedClick.issue_id == issue_id)
        ).all()
    )
    fresh = clickers - known
    if fresh:
        session.execute(
            insert(FoldedClick),
            [{"issue_id": issue_id, "subscriber_id": sid, "link_id": link} for sid, link in sorted(fresh)],
        )
    counts: dict[int, LinkCount] = {
        row.link_id: row
        for row in session.scalars(
            select(LinkCount).where(LinkCount.issue_id == issue_id, LinkCount.link_id.is_not(None))
        )
    }
    total = 0
    now = utcnow()
    for link_id, machine, hits in per_link:
        row = counts.setdefault(link_id, LinkCount(issue_id=issue_id, link_id=link_id))
        if machine:
            row.machine += hits
        else:
            row.human += hits
        row.updated_at = now
        session.add(row)
        total += hits
    session.execute(delete(LinkHit).where(*old))
    return total
