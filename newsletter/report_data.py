"""What an issue's report holds, as plain data for the CLI and the console: the full report with
its CSV rows, each link's figures, and the headline the week page shows (newsletter/reports.py
fills them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FOLDED_REASON = "folded (reason not kept)"  # machine clicks folded past retention
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
    # "Still want it?" questions to readers silent over the span of issues ending with this one, and
    # how they ended (newsletter.sunset.figures): asked, waiting, stayed, engaged, let_go, left
    reengagement: dict[str, int] = field(default_factory=dict)

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
        rows += [_row("reengagement", name, value=count) for name, count in self.reengagement.items()]
        return rows


def _row(section: str, name: str, **values) -> dict[str, object]:
    return {column: values.get(column, "") for column in CSV_COLUMNS} | {"section": section, "name": name}


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
