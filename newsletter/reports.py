"""What an issue did: queries over the ledger, the hits, the votes and the events, never counters
kept on the side, so every figure adds up with the ledger (a rollup keeps what the queries found,
never more: see below).

`issue_report(session, issue_id, zone)` and `issue_headline(session, issue_id)` (its few front-page
figures, by the same queries) return plain data (dataclasses with `as_json()`, the report with
`csv_rows()`) for the CLI and the editors' console alike. How the list moves week by week is in
newsletter/weekly.py, which shares `recipients` and `human_readers` from here.

Once an issue's send is over, its costliest figures (the ledger by status, the provider's outcomes,
the hits per link, its readers) are kept as exact rollups until what they count changes
(newsletter/rollups.py): the console's pages then read them instead of counting a million rows.

Clicks are hits on the issue's tracked links (the hidden decoy link included: only machines follow
it), opens are hits on its pixel; both are raw hits plus the counts that hits past their retention
were folded into (`linkcount`). A reader's unique count after folding is counted once on each side
of the fold: an upper bound for issues whose hits span it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import UTC
from zoneinfo import ZoneInfo

from sqlalchemy import and_, distinct, func, select, union
from sqlmodel import Session

from newsletter import report_growth as growth
from newsletter import rollups
from newsletter.curation import Week
from newsletter.models import (
    Comparison,
    Delivery,
    DeliveryStatus,
    EventKind,
    FoldedClick,
    Issue,
    IssueLink,
    LinkCount,
    LinkHit,
    ProviderEvent,
    SubscriberEvent,
    Tool,
    Vote,
)
from newsletter.report_data import CSV_COLUMNS, FOLDED_REASON, IssueHeadline, IssueReport, LinkFigures
from newsletter.sunset import figures as sunset_figures
from newsletter.tracking.links import LinkKind

__all__ = ["CSV_COLUMNS", "IssueHeadline", "IssueReport", "LinkFigures", "issue_headline", "issue_report"]

UNSUBSCRIBE_SOURCES = {"unsubscribe page": "link", "one-click": "list_unsubscribe"}
LEAVES = ("unsubscribed", "bounced", "complained", "erased")
SIGNUP_REQUESTED = "signup_requested"
ALREADY_ACTIVE = "already active"  # the detail of a signup an active reader asked for again


def issue_report(session: Session, issue_id: int, zone: ZoneInfo = UTC) -> IssueReport:
    """Every figure of one issue (see the module's docstring for what each counts)."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LookupError(f"no issue with id {issue_id}")
    ledger = ledger_counts(session, issue_id)
    provider = _provider_figures(session, issue_id)
    events = provider["outcomes"]
    hits = _hit_figures(session, issue_id)
    readers = _reader_figures(session, issue_id)
    links = [LinkFigures(**link) for link in hits["links"]]
    clicks = [link for link in links if link.kind != LinkKind.OPEN]
    opens = [link for link in links if link.kind == LinkKind.OPEN]
    return IssueReport(
        week=issue.week,
        status=issue.status,
        sent_at=issue.sent_at.isoformat() if issue.sent_at else None,
        ledger=ledger,
        recipients=ledger.get(DeliveryStatus.SENT, 0),
        delivered=events.get(EventKind.DELIVERED, 0),
        bounced={"hard": events.get(EventKind.BOUNCED, 0), "soft": events.get(EventKind.SOFT_BOUNCED, 0)},
        complaints=events.get(EventKind.COMPLAINED, 0),
        unsubscribes=_unsubscribes(session, issue_id),
        clicks={
            "human": sum(link.human for link in clicks),
            "machine": sum(link.machine for link in clicks),
            "human_readers": readers["clickers"],
            "machine_reasons": hits["reasons"],
        },
        links=clicks,
        comparisons=_comparisons(clicks, session, issue_id),
        votes=_votes(session, issue_id),
        opens={
            "tracked": bool(opens),
            "human": sum(link.human for link in opens),
            "machine": sum(link.machine for link in opens),
            "human_readers": readers["openers"] if opens else 0,
            **provider["opens"],
        },
        signups=_signups(session, Week.parse(issue.week), zone),
        reengagement=sunset_figures(session, last_issue_id=issue_id),
    )


def issue_headline(session: Session, issue_id: int) -> IssueHeadline:
    """The few figures of an issue that fit on a front page, by the queries its report uses."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LookupError(f"no issue with id {issue_id}")
    events = _provider_figures(session, issue_id)["outcomes"]
    return IssueHeadline(
        issue_id=issue_id,
        week=issue.week,
        status=issue.status,
        sent_at=issue.sent_at.isoformat() if issue.sent_at else None,
        recipients=recipients(session, issue_id),
        delivered=events.get(EventKind.DELIVERED, 0),
        human_readers=human_readers(session, issue_id, opens=False),
        unsubscribes=_unsubscribes(session, issue_id)["total"],
        bounces=events.get(EventKind.BOUNCED, 0) + events.get(EventKind.SOFT_BOUNCED, 0),
        complaints=events.get(EventKind.COMPLAINED, 0),
    )


def tracked(session: Session, issue_id: int) -> bool:
    """Whether the issue carried tracked links or a pixel (it was sent with NEWSLETTER_TRACKING on)."""
    first = session.execute(select(IssueLink.id).where(IssueLink.issue_id == issue_id).limit(1)).first()
    return first is not None


def _settled(session: Session, issue_id: int) -> bool:
    """Whether the issue's send is over, so its figures may be kept as rollups."""
    issue = session.get(Issue, issue_id)
    return issue is not None and issue.status in rollups.SETTLED


def ledger_counts(session: Session, issue_id: int) -> dict[str, int]:
    """The issue's deliveries by status: the ledger's rows, or their rollup once the send is over."""
    return rollups.figures(
        session, issue_id, "ledger", lambda s: _ledger(s, issue_id), settled=_settled(session, issue_id)
    )


def _ledger(session: Session, issue_id: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        ).all()
    )


def recipients(session: Session, issue_id: int) -> int:
    """The recipients: the ledger's sent rows."""
    return ledger_counts(session, issue_id).get(DeliveryStatus.SENT, 0)


def _provider_figures(session: Session, issue_id: int) -> dict[str, dict[str, int]]:
    """`outcomes`: deliveries with each outcome; `opens`: the provider's opens (a rollup's part)."""

    def count(s: Session) -> dict[str, dict[str, int]]:
        return {"outcomes": _events_by_kind(s, issue_id), "opens": _provider_opens(s, issue_id)}

    return rollups.figures(
        session, issue_id, "events", count, settled=_settled(session, issue_id), grows=growth.events_since
    )


def _hit_figures(session: Session, issue_id: int) -> dict[str, object]:
    """Every link's figures and the machine clicks by reason (a rollup's part)."""

    def count(s: Session) -> dict[str, object]:
        found = _link_figures(s, issue_id)
        links = [asdict(link) for link in found.values()]
        return {"links": links, "ids": list(found), "reasons": _machine_reasons(s, issue_id)}

    return rollups.figures(
        session, issue_id, "hits", count, settled=_settled(session, issue_id), grows=growth.hits_since
    )


def _reader_figures(session: Session, issue_id: int) -> dict[str, int]:
    """The issue's human readers of its links (`clickers`) and of its pixel (`openers`)."""

    def count(s: Session) -> dict[str, int]:
        return {
            "clickers": _human_readers(s, issue_id, opens=False),
            "openers": _human_readers(s, issue_id, opens=True),
        }

    return rollups.figures(
        session, issue_id, "readers", count, settled=_settled(session, issue_id), grows=growth.readers_since
    )


OUTCOMES = growth.OUTCOMES


def _events_by_kind(session: Session, issue_id: int) -> dict[str, int]:
    """Deliveries of the issue with at least one event of each outcome's kind (a provider may post
    twice). Only the kinds the figures use (a provider's opens and clicks can outnumber them all),
    each counted off its own stretch of the (issue_id, kind, delivery_id) index: a walk that skips
    repeats, where counting distinct ids per group would sort them."""

    def deliveries_with(kind: str):
        ids = (
            select(ProviderEvent.delivery_id)
            .where(
                ProviderEvent.issue_id == issue_id,
                ProviderEvent.kind == kind,
                ProviderEvent.delivery_id.is_not(None),
            )
            .distinct()
            .subquery()
        )
        return select(func.count()).select_from(ids).scalar_subquery()

    counts = session.execute(select(*[deliveries_with(kind) for kind in OUTCOMES])).one()
    return dict(zip(OUTCOMES, counts, strict=True))


def _link_figures(session: Session, issue_id: int) -> dict[int, LinkFigures]:
    """Each link's figures by its id, in id order."""
    links = {
        link.id: LinkFigures(link.url, link.kind, link.label, link.comparison_slug)
        for link in session.scalars(
            select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.id)
        )
    }
    raw = session.execute(  # grouped in the order of the (issue_id, machine, link_id, ...) index
        select(LinkHit.link_id, LinkHit.machine, func.count(), func.count(distinct(LinkHit.subscriber_id)))
        .where(LinkHit.issue_id == issue_id)
        .group_by(LinkHit.machine, LinkHit.link_id)
    )
    folds = _has_folded_clicks(session, issue_id)
    for link_id, machine, hits, readers in raw:
        figures = links[link_id]
        if machine:
            figures.machine += hits
        else:
            figures.human += hits
            figures.human_readers += 0 if folds else readers
    if folds:  # stored and folded readers together, so a reader is counted once per link
        clickers = _human_clickers(issue_id).subquery()
        readers = session.execute(
            select(clickers.c.link_id, func.count(distinct(clickers.c.subscriber_id))).group_by(
                clickers.c.link_id
            )
        )
        for link_id, count in readers:
            links[link_id].human_readers += count
    folded = session.execute(
        select(LinkCount.link_id, LinkCount.human, LinkCount.machine, LinkCount.human_readers).where(
            LinkCount.issue_id == issue_id, LinkCount.link_id.is_not(None)
        )
    )
    for link_id, human, machine, legacy_readers in folded:
        figures = links[link_id]
        figures.human += human
        figures.machine += machine
        figures.human_readers += legacy_readers  # counted by folds before revision 0010
    return links


def _human_clickers(issue_id: int):
    """(subscriber, link) of every human hit on the issue: stored ones and folded ones, so a reader
    is one reader whichever side of a fold their clicks fell."""
    stored = select(LinkHit.subscriber_id, LinkHit.link_id).where(
        LinkHit.issue_id == issue_id, LinkHit.machine.is_(False)
    )
    folded = select(FoldedClick.subscriber_id, FoldedClick.link_id).where(FoldedClick.issue_id == issue_id)
    return union(stored, folded)


def _has_folded_clicks(session: Session, issue_id: int) -> bool:
    """Whether retention folded any of the issue's human hits (none in its first 90 days)."""
    first = session.execute(select(FoldedClick.link_id).where(FoldedClick.issue_id == issue_id).limit(1))
    return first.first() is not None


def _on_links(session: Session, issue_id: int, *, opens: bool):
    """The hits on the issue's pixel (`opens`) or on its other links, as a condition on their link id."""
    return growth.on_links(LinkHit.link_id, growth.pixel_ids(session, issue_id), opens=opens)


def human_readers(session: Session, issue_id: int, *, opens: bool) -> int:
    """Readers with a human hit on the issue's pixel (`opens`) or on its other links."""
    return _reader_figures(session, issue_id)["openers" if opens else "clickers"]


def _human_readers(session: Session, issue_id: int, *, opens: bool) -> int:
    kind = IssueLink.kind == LinkKind.OPEN if opens else IssueLink.kind != LinkKind.OPEN
    if _has_folded_clicks(session, issue_id):  # stored and folded together: one reader is one reader
        clickers = _human_clickers(issue_id).subquery()
        readers = session.execute(
            select(func.count(distinct(clickers.c.subscriber_id)))
            .join(IssueLink, IssueLink.id == clickers.c.link_id)
            .where(kind)
        ).scalar_one()
    else:  # the usual case, on the (issue_id, machine, link_id, subscriber_id) index alone
        readers = session.execute(
            select(func.count(distinct(LinkHit.subscriber_id))).where(
                LinkHit.issue_id == issue_id,
                LinkHit.machine.is_(False),
                _on_links(session, issue_id, opens=opens),
            )
        ).scalar_one()
    # Folds before revision 0010 kept readers as counts: the pixel's on its own row, clicks on the
    # issue's row (`link_id` None). New folds add nothing there.
    if opens:
        legacy = session.execute(
            select(func.coalesce(func.sum(LinkCount.human_readers), 0))
            .join(IssueLink, IssueLink.id == LinkCount.link_id)
            .where(LinkCount.issue_id == issue_id, kind)
        ).scalar_one()
    else:
        legacy = session.execute(
            select(func.coalesce(func.sum(LinkCount.human_readers), 0)).where(
                LinkCount.issue_id == issue_id, LinkCount.link_id.is_(None)
            )
        ).scalar_one()
    return readers + legacy


def _machine_reasons(session: Session, issue_id: int) -> dict[str, int]:
    """Machine clicks by the rule that judged them; those folded past retention under FOLDED_REASON,
    so the reasons always add up to the machine clicks."""
    query = (
        select(LinkHit.reason, func.count())
        .where(
            LinkHit.issue_id == issue_id, LinkHit.machine.is_(True), _on_links(session, issue_id, opens=False)
        )
        .group_by(LinkHit.reason)
        .order_by(func.count().desc())
    )
    reasons = dict(session.execute(query).all())
    folded = session.execute(
        select(func.coalesce(func.sum(LinkCount.machine), 0))
        .join(IssueLink, IssueLink.id == LinkCount.link_id)
        .where(LinkCount.issue_id == issue_id, IssueLink.kind != LinkKind.OPEN)
    ).scalar_one()
    return reasons | ({FOLDED_REASON: folded} if folded else {})


def _comparisons(clicks: list[LinkFigures], session: Session, issue_id: int) -> list[dict[str, object]]:
    titles = dict(
        session.execute(
            select(Comparison.slug, Comparison.title).where(
                Comparison.slug.in_({link.comparison for link in clicks if link.comparison})
            )
        ).all()
    )
    totals: dict[str, Counter] = defaultdict(Counter)
    for link in clicks:
        if link.comparison:
            totals[link.comparison].update(human=link.human, machine=link.machine)
    return [
        {
            "slug": slug,
            "title": titles.get(slug, slug),
            "human": counts["human"],
            "machine": counts["machine"],
        }
        for slug, counts in totals.items()
    ]


def _votes(session: Session, issue_id: int) -> list[dict[str, object]]:
    query = (
        select(Comparison.slug, Tool.slug, Vote.verdict, func.count())
        .join(Comparison, Comparison.id == Vote.comparison_id)
        .join(Tool, Tool.id == Vote.tool_id)
        .where(Vote.issue_id == issue_id)
        .group_by(Comparison.slug, Tool.slug, Vote.verdict)
        .order_by(Comparison.slug, Tool.slug)
    )
    tally: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for comparison, tool, verdict, count in session.execute(query):
        tally[(comparison, tool)][verdict] += count
    return [
        {"comparison": comparison, "tool": tool, "ship": counts["ship"], "skip": counts["skip"]}
        for (comparison, tool), counts in tally.items()
    ]


def _unsubscribes(session: Session, issue_id: int) -> dict[str, int]:
    query = (
        select(SubscriberEvent.source, func.count())
        .where(SubscriberEvent.issue_id == issue_id, SubscriberEvent.kind == "unsubscribed")
        .group_by(SubscriberEvent.source)
    )
    found = {"link": 0, "list_unsubscribe": 0, "provider": 0}
    for source, count in session.execute(query):
        found[UNSUBSCRIBE_SOURCES.get(source, "provider")] += count
    return found | {"total": sum(found.values())}


def _provider_opens(session: Session, issue_id: int) -> dict[str, int]:
    """Open events the provider reported (with its own tracking on), split by its machine flag: an
    event it did not flag counts as human."""
    query = (
        select(ProviderEvent.machine, func.count())
        .where(ProviderEvent.issue_id == issue_id, ProviderEvent.kind == EventKind.OPENED)
        .group_by(ProviderEvent.machine)
    )
    counts = {"provider_human": 0, "provider_machine": 0}
    for machine, count in session.execute(query):
        counts["provider_machine" if machine else "provider_human"] += count
    return counts


def _signups(session: Session, week: Week, zone: ZoneInfo) -> dict[str, int]:
    start, end = week.bounds(zone)
    query = (
        select(SubscriberEvent.kind, func.count())
        .where(
            SubscriberEvent.at >= start,
            SubscriberEvent.at < end,
            SubscriberEvent.kind.in_(("signup_requested", "confirmed")),
            and_(SubscriberEvent.detail.is_distinct_from("already active")),
        )
        .group_by(SubscriberEvent.kind)
    )
    counts = dict(session.execute(query).all())
    return {"requested": counts.get("signup_requested", 0), "confirmed": counts.get("confirmed", 0)}
