"""What an issue did, and how the list moves week by week: queries over the ledger, the hits, the
votes and the events, never counters kept on the side, so every figure adds up with the ledger.

`issue_report(session, issue_id, zone)`, `issue_headline(session, issue_id)` (its few front-page
figures, by the same queries), `weekly_stats(session, weeks, zone)` and `list_movements` (the list's
side of it, which newsletter/audience.py charts) return plain data (dataclasses with `as_json()`, and
`csv_rows()` where a CSV is offered) for the CLI and the editors' console alike.

Clicks are hits on the issue's tracked links (the hidden decoy link included: only machines follow
it), opens are hits on its pixel; both are raw hits plus the counts that hits past their retention
were folded into (`linkcount`). A reader's unique count after folding is counted once on each side
of the fold: an upper bound for issues whose hits span it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, and_, case, cast, distinct, func, select, text, true
from sqlalchemy.orm import aliased
from sqlmodel import Session

from newsletter.curation import Week
from newsletter.models import (
    STATE_EVENTS,
    Comparison,
    Delivery,
    DeliveryStatus,
    EventKind,
    Issue,
    IssueLink,
    LinkCount,
    LinkHit,
    ProviderEvent,
    SubscriberEvent,
    Tool,
    Vote,
)
from newsletter.tracking.links import LinkKind

UNSUBSCRIBE_SOURCES = {"unsubscribe page": "link", "one-click": "list_unsubscribe"}
LEAVES = ("unsubscribed", "bounced", "complained", "erased")
SIGNUP_REQUESTED = "signup_requested"
ALREADY_ACTIVE = "already active"  # the detail of a signup an active reader asked for again
CSV_COLUMNS = ("section", "name", "url", "value", "human", "machine", "ship", "skip")


@dataclass
class LinkFigures:
    url: str
    kind: str
    label: str
    comparison: str | None
    human: int = 0
    machine: int = 0
    human_readers: int = 0


@dataclass
class IssueReport:
    week: str
    status: str
    sent_at: str | None
    ledger: dict[str, int]
    recipients: int  # rows sent: handed to the provider
    delivered: int
    bounced: dict[str, int]  # hard, soft: deliveries with such an event
    complaints: int
    unsubscribes: dict[str, int]  # link, list_unsubscribe, provider, total
    clicks: dict[str, object]  # human, machine, human_readers, machine_reasons
    links: list[LinkFigures]
    comparisons: list[dict[str, object]]
    votes: list[dict[str, object]]
    opens: dict[str, object]
    signups: dict[str, int]  # requested, confirmed in the issue's week

    def as_json(self) -> dict:
        return asdict(self)

    def csv_rows(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = [_row("issue", "week", value=self.week)]
        rows += [_row("ledger", status, value=count) for status, count in sorted(self.ledger.items())]
        rows += [
            _row("delivery", "recipients", value=self.recipients),
            _row("delivery", "delivered", value=self.delivered),
            _row("delivery", "bounced_hard", value=self.bounced["hard"]),
            _row("delivery", "bounced_soft", value=self.bounced["soft"]),
            _row("delivery", "complaints", value=self.complaints),
        ]
        rows += [_row("unsubscribes", source, value=count) for source, count in self.unsubscribes.items()]
        rows.append(
            _row(
                "clicks",
                "all links",
                value=self.clicks["human_readers"],
                human=self.clicks["human"],
                machine=self.clicks["machine"],
            )
        )
        rows += [
            _row("machine_reason", reason, value=count)
            for reason, count in self.clicks["machine_reasons"].items()
        ]
        rows += [
            _row("comparison", c["slug"], human=c["human"], machine=c["machine"]) for c in self.comparisons
        ]
        rows += [
            _row(
                f"link:{link.kind}",
                link.label,
                url=link.url,
                value=link.human_readers,
                human=link.human,
                machine=link.machine,
            )
            for link in self.links
        ]
        rows += [
            _row(
                "vote",
                f"{v['comparison']}/{v['tool']}",
                value=v["ship"] + v["skip"],
                ship=v["ship"],
                skip=v["skip"],
            )
            for v in self.votes
        ]
        rows.append(
            _row(
                "opens",
                "pixel",
                value=self.opens["human_readers"],
                human=self.opens["human"],
                machine=self.opens["machine"],
            )
        )
        rows.append(
            _row(
                "opens",
                "provider",
                human=self.opens["provider_human"],
                machine=self.opens["provider_machine"],
            )
        )
        rows += [_row("signups", name, value=count) for name, count in self.signups.items()]
        return rows


def _row(section: str, name: str, **values) -> dict[str, object]:
    return {column: values.get(column, "") for column in CSV_COLUMNS} | {"section": section, "name": name}


def issue_report(session: Session, issue_id: int, zone: ZoneInfo = UTC) -> IssueReport:
    """Every figure of one issue (see the module's docstring for what each counts)."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LookupError(f"no issue with id {issue_id}")
    ledger = _ledger(session, issue_id)
    events = _events_by_kind(session, issue_id)
    links = _link_figures(session, issue_id)
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
            "human_readers": _human_readers(session, issue_id, opens=False),
            "machine_reasons": _machine_reasons(session, issue_id),
        },
        links=clicks,
        comparisons=_comparisons(clicks, session, issue_id),
        votes=_votes(session, issue_id),
        opens={
            "tracked": bool(opens),
            "human": sum(link.human for link in opens),
            "machine": sum(link.machine for link in opens),
            "human_readers": _human_readers(session, issue_id, opens=True) if opens else 0,
            **_provider_opens(session, issue_id),
        },
        signups=_signups(session, Week.parse(issue.week), zone),
    )


@dataclass
class IssueHeadline:
    """An issue's figures at a glance (the week page): the same counts as its full report."""

    issue_id: int
    week: str
    status: str
    sent_at: str | None
    recipients: int
    delivered: int
    human_readers: int  # readers with at least one human click
    unsubscribes: int
    bounces: int  # hard and soft
    complaints: int

    @property
    def human_click_rate(self) -> float | None:
        return round(self.human_readers / self.recipients, 4) if self.recipients else None

    def as_json(self) -> dict:
        return asdict(self) | {"human_click_rate": self.human_click_rate}


def issue_headline(session: Session, issue_id: int) -> IssueHeadline:
    """The few figures of an issue that fit on a front page, by the queries its report uses."""
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise LookupError(f"no issue with id {issue_id}")
    events = _events_by_kind(session, issue_id)
    return IssueHeadline(
        issue_id=issue_id,
        week=issue.week,
        status=issue.status,
        sent_at=issue.sent_at.isoformat() if issue.sent_at else None,
        recipients=_sent(session, issue_id),
        delivered=events.get(EventKind.DELIVERED, 0),
        human_readers=_human_readers(session, issue_id, opens=False),
        unsubscribes=_unsubscribes(session, issue_id)["total"],
        bounces=events.get(EventKind.BOUNCED, 0) + events.get(EventKind.SOFT_BOUNCED, 0),
        complaints=events.get(EventKind.COMPLAINED, 0),
    )


def _ledger(session: Session, issue_id: int) -> dict[str, int]:
    return dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.issue_id == issue_id)
            .group_by(Delivery.status)
        ).all()
    )


def _sent(session: Session, issue_id: int) -> int:
    """The recipients: the ledger's sent rows."""
    return session.execute(
        select(func.count()).where(Delivery.issue_id == issue_id, Delivery.status == DeliveryStatus.SENT)
    ).scalar_one()


OUTCOMES = (EventKind.DELIVERED, EventKind.BOUNCED, EventKind.SOFT_BOUNCED, EventKind.COMPLAINED)


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


def _link_figures(session: Session, issue_id: int) -> list[LinkFigures]:
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
    for link_id, machine, hits, readers in raw:
        figures = links[link_id]
        if machine:
            figures.machine += hits
        else:
            figures.human += hits
            figures.human_readers += readers
    folded = session.execute(
        select(LinkCount.link_id, LinkCount.human, LinkCount.machine, LinkCount.human_readers).where(
            LinkCount.issue_id == issue_id, LinkCount.link_id.is_not(None)
        )
    )
    for link_id, human, machine, readers in folded:
        figures = links[link_id]
        figures.human += human
        figures.machine += machine
        figures.human_readers += readers
    return list(links.values())


def _on_links(session: Session, issue_id: int, *, opens: bool):
    """The hits on the issue's pixel (`opens`) or on its other links, as a condition on the hit's
    link id: none at all when the issue has no pixel, the usual case, so no join with the link
    table is needed."""
    pixel = list(
        session.scalars(
            select(IssueLink.id).where(IssueLink.issue_id == issue_id, IssueLink.kind == LinkKind.OPEN)
        )
    )
    if opens:
        return LinkHit.link_id.in_(pixel)
    return LinkHit.link_id.not_in(pixel) if pixel else true()


def _human_readers(session: Session, issue_id: int, *, opens: bool) -> int:
    kind = IssueLink.kind == LinkKind.OPEN if opens else IssueLink.kind != LinkKind.OPEN
    raw = session.execute(
        select(func.count(distinct(LinkHit.subscriber_id))).where(
            LinkHit.issue_id == issue_id,
            LinkHit.machine.is_(False),
            _on_links(session, issue_id, opens=opens),
        )
    ).scalar_one()
    if opens:  # the pixel's folded readers are on its own row
        folded = session.execute(
            select(func.coalesce(func.sum(LinkCount.human_readers), 0))
            .join(IssueLink, IssueLink.id == LinkCount.link_id)
            .where(LinkCount.issue_id == issue_id, kind)
        ).scalar_one()
    else:
        folded = session.execute(
            select(func.coalesce(func.sum(LinkCount.human_readers), 0)).where(
                LinkCount.issue_id == issue_id, LinkCount.link_id.is_(None)
            )
        ).scalar_one()
    return raw + folded


FOLDED_REASON = "folded (reason not kept)"


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


# --- week by week ------------------------------------------------------------------------------------


@dataclass
class WeekFigures:
    week: str
    list_size: int  # active readers at the week's end, from the event trail
    signups: int
    confirmations: int
    leaves: dict[str, int] = field(default_factory=dict)
    issue: str | None = None
    recipients: int = 0
    human_readers: int = 0

    @property
    def human_click_rate(self) -> float | None:
        return round(self.human_readers / self.recipients, 4) if self.recipients else None

    def as_json(self) -> dict:
        return asdict(self) | {"human_click_rate": self.human_click_rate}

    def csv_row(self) -> dict[str, object]:
        row = {
            "week": self.week,
            "list_size": self.list_size,
            "signups": self.signups,
            "confirmations": self.confirmations,
        }
        row |= {f"left_{reason}": self.leaves.get(reason, 0) for reason in LEAVES}
        rate = self.human_click_rate
        return row | {
            "issue": self.issue or "",
            "recipients": self.recipients,
            "human_readers": self.human_readers,
            "human_click_rate": "" if rate is None else rate,
        }


JOINS = ("confirmed", "subscribed")


def last_weeks(weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None) -> list[Week]:
    """The last `weeks` ISO weeks in `zone`, this one included, oldest first."""
    current = Week.containing(now or datetime.now(UTC), zone)
    mondays = [current.monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    return [Week(*monday.isocalendar()[:2]) for monday in mondays]


def list_movements(
    session: Session, weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None
) -> list[WeekFigures]:
    """How the list moved in each of the last `weeks` weeks, oldest first: its size at the week's
    end, signups, confirmations and leaves by reason (the issue columns left empty). The same
    queries however many weeks: two over the window's events, three for the sizes."""
    chosen = last_weeks(weeks, zone, now)
    bounds = [week.bounds(zone) for week in chosen]
    ends = [end for _, end in bounds]
    which = case(*[(SubscriberEvent.at < end, n) for n, end in enumerate(ends)], else_=len(ends))
    window = and_(SubscriberEvent.at >= bounds[0][0], SubscriberEvent.at < ends[-1])
    kinds: list[Counter] = [Counter() for _ in chosen]
    counted = session.execute(  # index-only on (at, kind)
        select(which, SubscriberEvent.kind, func.count()).where(window).group_by(which, SubscriberEvent.kind)
    )
    for n, kind, count in counted:
        kinds[n][kind] += count
    again = session.execute(  # an active reader asking again is no signup (a small partial index)
        select(which, func.count())
        .where(window, SubscriberEvent.kind == SIGNUP_REQUESTED, SubscriberEvent.detail == ALREADY_ACTIVE)
        .group_by(which)
    )
    signups = [kinds[n][SIGNUP_REQUESTED] for n in range(len(chosen))]
    for n, count in again:
        signups[n] -= count
    sizes = list_sizes_at(session, ends)
    return [
        WeekFigures(
            week=week.label,
            list_size=size,
            signups=signups[n],
            confirmations=kinds[n]["confirmed"],
            leaves={reason: kinds[n][reason] for reason in LEAVES},
        )
        for n, (week, size) in enumerate(zip(chosen, sizes, strict=True))
    ]


def weekly_stats(
    session: Session, weeks: int, zone: ZoneInfo = UTC, now: datetime | None = None
) -> list[WeekFigures]:
    """The last `weeks` ISO weeks (this one included), oldest first: the list's movements and each
    week's issue with its recipients and human clickers."""
    figures = list_movements(session, weeks, zone, now)
    labels = [row.week for row in figures]
    issues = dict(session.execute(select(Issue.week, Issue.id).where(Issue.week.in_(labels))).all())
    for row in figures:
        if row.week in issues:
            row.issue, row.recipients = row.week, _sent(session, issues[row.week])
            row.human_readers = _human_readers(session, issues[row.week], opens=False)
    return figures


def list_size_at(session: Session, moment: datetime) -> int:
    """Readers whose latest change of state before `moment` made them active (a confirmation or an
    owner's add). Erased readers keep no history, so they drop out of the past too."""
    return list_sizes_at(session, [moment])[0]


STATES = STATE_EVENTS  # (*JOINS, *LEAVES): the kinds the partial index ix_subscriberevent_state holds


def list_sizes_at(session: Session, moments: list[datetime]) -> list[int]:
    """`list_size_at` for each of `moments` (ascending), in three queries whatever their number.

    A reader's latest change of state before a moment is their state event of highest id among
    those before it. Readers with no state event between the first moment and the last have the
    same latest one at every moment, so only the others ("touched") are looked at per moment:
    size(m) = size(first) - touched active at first + touched active at m. One aggregate finds
    both the latest event and whether it is a join: the maximum of id * 2 + (1 for a join)."""
    if not moments:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # Compiling these plans (JIT) costs more than running them; until the transaction ends.
        session.execute(text("SET LOCAL jit = off"))
    first, last = moments[0], moments[-1]
    event = SubscriberEvent
    state = and_(event.kind.in_(STATES), event.subscriber_id.is_not(None))
    packed = cast(event.id, BigInteger) * 2 + case((event.kind.in_(JOINS), 1), else_=0)
    latest = (
        select(func.max(packed).label("latest")).where(state, event.at < first).group_by(event.subscriber_id)
    )
    latest = latest.subquery()
    base = session.execute(select(func.count()).where(latest.c.latest % 2 == 1)).scalar_one()
    sizes = [base] * len(moments)
    if len(moments) > 1:
        changes = (  # OFFSET 0: each row's packed value made once, not once per moment below
            select(event.subscriber_id.label("reader"), event.at.label("at"), packed.label("packed"))
            .where(state, event.at >= first, event.at < last)
            .offset(0)
            .subquery()
        )
        window = (
            select(
                changes.c.reader,
                *[
                    func.max(case((changes.c.at < moment, changes.c.packed))).label(f"w{n}")
                    for n, moment in enumerate(moments)
                ],
            )
            .group_by(changes.c.reader)
            .subquery()
        )
        earlier = aliased(SubscriberEvent)
        before = (
            select(
                func.coalesce(
                    func.max(cast(earlier.id, BigInteger) * 2 + case((earlier.kind.in_(JOINS), 1), else_=0)),
                    0,
                )
            )
            .where(earlier.subscriber_id == window.c.reader, earlier.kind.in_(STATES), earlier.at < first)
            .scalar_subquery()
        )
        # OFFSET 0 keeps the planner from copying the subquery into each of the counts below
        touched = (
            select(before.label("w"), *[window.c[f"w{n}"] for n in range(len(moments))]).offset(0).subquery()
        )

        def active_at(n: int):
            then = func.coalesce(touched.c[f"w{n}"], 0)
            return case((touched.c.w > then, touched.c.w), else_=then) % 2 == 1

        active = session.execute(
            select(*[func.count().filter(active_at(n)) for n in range(len(moments))])
        ).one()
        sizes = [base - active[0] + active[n] for n in range(len(moments))]
    return [size + joined for size, joined in zip(sizes, _no_reader_active(session, moments), strict=True)]


def _no_reader_active(session: Session, moments: list[datetime]) -> list[int]:
    """The events of no reader (NULL: cut loose by a purge) count as one reader of their own, as
    grouping by reader makes them; normally there are none."""
    rows = session.execute(
        select(SubscriberEvent.id, SubscriberEvent.kind, SubscriberEvent.at).where(
            SubscriberEvent.subscriber_id.is_(None),
            SubscriberEvent.kind.in_(STATES),
            SubscriberEvent.at < moments[-1],
        )
    ).all()
    result = []
    for moment in moments:
        before = [(row.id, row.kind) for row in rows if row.at < moment]
        result.append(1 if before and max(before)[1] in JOINS else 0)
    return result
