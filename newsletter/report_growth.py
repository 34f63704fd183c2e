"""The report's figures of rows appended after a rollup was kept: what turns a kept count into
today's without counting the million rows before it again.

Hits and provider events only ever arrive after a send (a retention fold or an erasure deletes
some, and that drops the rollup, newsletter/rollup_triggers.py). A rollup of them records the
highest row id it counted (`through`): every row above it is new. Each function here takes the
kept figures and `through`, counts the issue's rows above `through` alone (the primary key's range,
a few thousand rows where a recount reads a million) and returns the figures as a recount would
find them, with how many new rows it read. A reader or a delivery counted once stays counted once:
a new row adds one only where no row at or below `through` (nor a folded click) already counted it.

Each returns None where the kept figures cannot be grown (a link they do not know): the caller
counts afresh.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, distinct, exists, func, select, true
from sqlalchemy.orm import aliased
from sqlmodel import Session

from newsletter.models import EventKind, FoldedClick, IssueLink, LinkHit, ProviderEvent
from newsletter.report_data import FOLDED_REASON
from newsletter.tracking.links import LinkKind

OUTCOMES = (EventKind.DELIVERED, EventKind.BOUNCED, EventKind.SOFT_BOUNCED, EventKind.COMPLAINED)
Grown = tuple[Any, int]  # (the figures now, the new rows read)


def hits_since(session: Session, issue_id: int, kept: dict[str, Any], through: int) -> Grown | None:
    """The `hits` part (each link's human and machine clicks and human readers, machine clicks by
    reason; `ids`: the links' ids in the order of `links`) grown by the issue's hits above
    `through`."""
    position = {link_id: n for n, link_id in enumerate(kept["ids"])}
    links = [dict(link) for link in kept["links"]]
    older = aliased(LinkHit)
    first_on_link = and_(
        LinkHit.machine.is_(False),
        ~exists().where(
            older.issue_id == issue_id,
            older.machine.is_(False),
            older.link_id == LinkHit.link_id,
            older.subscriber_id == LinkHit.subscriber_id,
            older.id <= through,
        ),
        ~exists().where(
            FoldedClick.issue_id == issue_id,
            FoldedClick.link_id == LinkHit.link_id,
            FoldedClick.subscriber_id == LinkHit.subscriber_id,
        ),
    )
    rows = session.execute(
        select(
            LinkHit.link_id,
            LinkHit.machine,
            func.count(),
            func.count(distinct(LinkHit.subscriber_id)).filter(first_on_link),
        )
        .where(LinkHit.issue_id == issue_id, LinkHit.id > through)
        .group_by(LinkHit.link_id, LinkHit.machine)
    ).all()
    if any(link_id not in position for link_id, *_ in rows):
        return None  # a link the kept figures do not know (adding one drops them too): count afresh
    seen = 0
    for link_id, machine, hits, readers in rows:
        link = links[position[link_id]]
        seen += hits
        if machine:
            link["machine"] += hits
        else:
            link["human"] += hits
            link["human_readers"] += readers
    reasons = dict(kept["reasons"])
    if seen:
        pixel = [
            link_id for link_id, link in zip(kept["ids"], links, strict=True) if link["kind"] == LinkKind.OPEN
        ]
        new_reasons = session.execute(
            select(LinkHit.reason, func.count())
            .where(
                LinkHit.issue_id == issue_id,
                LinkHit.id > through,
                LinkHit.machine.is_(True),
                on_links(LinkHit.link_id, pixel, opens=False),
            )
            .group_by(LinkHit.reason)
        )
        for reason, count in new_reasons:
            reasons[reason] = reasons.get(reason, 0) + count
    return {"links": links, "ids": kept["ids"], "reasons": _by_count(reasons)}, seen


def readers_since(session: Session, issue_id: int, kept: dict[str, int], through: int) -> Grown | None:
    """The `readers` part (the issue's human readers of its links, `clickers`, and of its pixel,
    `openers`) grown by the issue's human hits above `through`."""
    pixel = pixel_ids(session, issue_id)
    grown = dict(kept)
    seen = 0
    for name, opens in (("clickers", False), ("openers", True)):
        if opens and not pixel:
            continue
        new, rows = _new_readers(session, issue_id, through, pixel, opens=opens)
        grown[name] += new
        seen += rows
    return grown, seen


def _new_readers(
    session: Session, issue_id: int, through: int, pixel: list[int], *, opens: bool
) -> tuple[int, int]:
    """Readers whose first human hit on the links (or the pixel) is above `through`, and the new
    human hits read."""
    older = aliased(LinkHit)
    folded = aliased(FoldedClick)
    first = and_(
        ~exists().where(
            older.issue_id == issue_id,
            older.subscriber_id == LinkHit.subscriber_id,
            older.machine.is_(False),
            older.id <= through,
            on_links(older.link_id, pixel, opens=opens),
        ),
        ~exists().where(
            folded.issue_id == issue_id,
            folded.subscriber_id == LinkHit.subscriber_id,
            on_links(folded.link_id, pixel, opens=opens),
        ),
    )
    new, rows = session.execute(
        select(func.count(distinct(LinkHit.subscriber_id)).filter(first), func.count()).where(
            LinkHit.issue_id == issue_id,
            LinkHit.id > through,
            LinkHit.machine.is_(False),
            on_links(LinkHit.link_id, pixel, opens=opens),
        )
    ).one()
    return new, rows


def events_since(session: Session, issue_id: int, kept: dict[str, Any], through: int) -> Grown | None:
    """The `events` part (deliveries with each provider outcome, the provider's opens) grown by the
    issue's provider events above `through`."""
    older = aliased(ProviderEvent)
    first = ~exists().where(
        older.issue_id == issue_id,
        older.kind == ProviderEvent.kind,
        older.delivery_id == ProviderEvent.delivery_id,
        older.id <= through,
    )
    outcomes = dict(kept["outcomes"])
    opens = dict(kept["opens"])
    seen = 0
    rows = session.execute(
        select(
            ProviderEvent.kind,
            ProviderEvent.machine,
            func.count(),
            func.count(distinct(ProviderEvent.delivery_id)).filter(first),
        )
        .where(ProviderEvent.issue_id == issue_id, ProviderEvent.id > through)
        .group_by(ProviderEvent.kind, ProviderEvent.machine)
    )
    for kind, machine, count, deliveries in rows:
        seen += count
        if kind in OUTCOMES:
            outcomes[kind] = outcomes.get(kind, 0) + deliveries
        elif kind == EventKind.OPENED:
            name = "provider_machine" if machine else "provider_human"
            opens[name] += count
    return {"outcomes": outcomes, "opens": opens}, seen


def pixel_ids(session: Session, issue_id: int) -> list[int]:
    """The ids of the issue's pixel links (none for most issues: tracking opens is off by default)."""
    query = select(IssueLink.id).where(IssueLink.issue_id == issue_id, IssueLink.kind == LinkKind.OPEN)
    return list(session.scalars(query))


def on_links(link_id, pixel: list[int], *, opens: bool):
    """A condition on a link id column: on the pixel (`opens`) or on the issue's other links; none
    at all when the issue has no pixel, the usual case, so no join with the link table is needed."""
    if opens:
        return link_id.in_(pixel)
    return link_id.not_in(pixel) if pixel else true()


def _by_count(reasons: dict[str, int]) -> dict[str, int]:
    """Machine reasons most first, as a recount orders them; the folded ones stay last."""
    folded = reasons.pop(FOLDED_REASON, None)
    ordered = dict(sorted(reasons.items(), key=lambda item: -item[1]))
    return ordered | ({FOLDED_REASON: folded} if folded else {})
