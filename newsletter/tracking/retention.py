"""Raw hits are kept NEWSLETTER_HIT_RETENTION_DAYS, then folded into per-issue, per-link counts.

The scheduler's `retention` job runs `fold_old_hits` daily. Per issue, in one transaction: every
stored hit of the issue is judged again (a provider's `delivered` event that came after the hits
moves the delivery-window rule), then the hits past the cutoff are added to `linkcount` (per link:
human hits, machine hits, human readers; per issue, `link_id` None: the readers with a human click)
and deleted. The counts name no reader, so erasing a reader leaves them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.db import session_scope
from newsletter.models import IssueLink, LinkCount, LinkHit, utcnow
from newsletter.tracking.classify import Rules
from newsletter.tracking.links import LinkKind
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
        select(LinkHit.link_id, LinkHit.machine, func.count(), func.count(distinct(LinkHit.subscriber_id)))
        .where(*old)
        .group_by(LinkHit.link_id, LinkHit.machine)
    ).all()
    readers = session.execute(
        select(func.count(distinct(LinkHit.subscriber_id)))
        .join(IssueLink, IssueLink.id == LinkHit.link_id)
        .where(*old, LinkHit.machine.is_(False), IssueLink.kind != LinkKind.OPEN)
    ).scalar_one()
    counts: dict[int | None, LinkCount] = {
        row.link_id: row for row in session.scalars(select(LinkCount).where(LinkCount.issue_id == issue_id))
    }

    def count_for(link_id: int | None) -> LinkCount:
        if link_id not in counts:
            counts[link_id] = LinkCount(issue_id=issue_id, link_id=link_id)
        return counts[link_id]

    total = 0
    for link_id, machine, hits, link_readers in per_link:
        row = count_for(link_id)
        if machine:
            row.machine += hits
        else:
            row.human += hits
            row.human_readers += link_readers
        total += hits
    if readers:
        count_for(None).human_readers += readers
    now = utcnow()
    for row in counts.values():
        row.updated_at = now
        session.add(row)
    session.execute(delete(LinkHit).where(*old))
    return total
