"""Human or machine: the rules that judge a reader's hits on one issue, as a pure function.

A hit's verdict depends on the hit itself (its method, headers, agent, the link it names), on the
reader's other hits around it (a burst, a hit on the hidden link) and on when the message was
delivered. `classify` takes all of a reader's hits for one issue that matter and returns a verdict
for each, with the first rule that made it a machine's:

method:HEAD, method:OPTIONS   no browser asks these when a person clicks; scanners do
prefetch                      `Purpose`/`Sec-Purpose: prefetch` (or `X-Moz: prefetch`): not a visit
agent:<class>                 a class of agents.toml that is a machine's for this kind of hit
decoy                         the hidden link: no person can see or reach it
decoy-burst                   within `decoy_seconds` of that reader's hit on the hidden link
burst                         `burst_links` different links within `burst_seconds` (no person clicks
                              three links within two seconds; every link at once is a scanner)
early                         within `machine_window` seconds of delivery (scanners fetch on arrival)

A person who reads, clicks one comparison and a few seconds later another is none of these: human.
Opens (the pixel) take the same rules except the burst, which counts links.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.tracking.agents import AgentList, default_list

CLICK, OPEN = "click", "open"
HUMAN = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """What the rules look at. `at` in seconds (any epoch, the same for every hit and delivery)."""

    at: float
    link: str  # the link's code
    kind: str  # CLICK for a tracked link, OPEN for the pixel
    method: str = "GET"
    agent: str = "browser"
    prefetch: bool = False
    decoy: bool = False


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings of the rules (NEWSLETTER_MACHINE_WINDOW_SECONDS, _BURST_LINKS, _BURST_SECONDS,
    _DECOY_SECONDS)."""

    machine_window: float = 60.0
    burst_links: int = 3
    burst_seconds: float = 2.0
    decoy_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings) -> Rules:
        return cls(
            machine_window=settings.machine_window_seconds,
            burst_links=settings.burst_links,
            burst_seconds=settings.burst_seconds,
            decoy_seconds=settings.decoy_seconds,
        )

    @property
    def reach(self) -> float:
        """How far apart in time two hits can be and still change each other's verdict."""
        return max(self.burst_seconds, self.decoy_seconds)


@dataclass(frozen=True, slots=True)
class Verdict:
    machine: bool
    reason: str = HUMAN


def classify(
    hits: Sequence[Hit], delivered_at: float | None, rules: Rules, agents: AgentList | None = None
) -> list[Verdict]:
    """A verdict for each of one reader's hits on one issue, in the order given."""
    agents = agents or default_list()
    order = sorted(range(len(hits)), key=lambda i: hits[i].at)
    ordered = [hits[i] for i in order]
    decoys = [hit.at for hit in ordered if hit.decoy]
    in_burst = _bursts(ordered, rules)
    verdicts: list[Verdict] = [Verdict(False)] * len(hits)
    for position, hit in enumerate(ordered):
        verdicts[order[position]] = _judge(hit, in_burst[position], decoys, delivered_at, rules, agents)
    return verdicts


def _judge(
    hit: Hit, burst: bool, decoys: list[float], delivered_at: float | None, rules: Rules, agents: AgentList
) -> Verdict:
    method = hit.method.upper()
    if method in ("HEAD", "OPTIONS"):
        return Verdict(True, f"method:{method}")
    if hit.prefetch:
        return Verdict(True, "prefetch")
    if agents.is_machine(hit.agent, hit.kind):
        return Verdict(True, f"agent:{hit.agent}")
    if hit.decoy:
        return Verdict(True, "decoy")
    if any(abs(hit.at - at) <= rules.decoy_seconds for at in decoys):
        return Verdict(True, "decoy-burst")
    if burst:
        return Verdict(True, "burst")
    if rules.machine_window > 0 and delivered_at is not None and hit.at - delivered_at < rules.machine_window:
        return Verdict(True, "early")  # a hit before the recorded delivery too: clocks differ by seconds
    return Verdict(False)


def _bursts(ordered: list[Hit], rules: Rules) -> list[bool]:
    """For each hit (sorted by time): whether some window of `burst_seconds` holding it also holds
    hits on at least `burst_links` different links (clicks only)."""
    flags = [False] * len(ordered)
    clicks = [i for i, hit in enumerate(ordered) if hit.kind == CLICK]
    start = 0
    for end in range(len(clicks)):
        while ordered[clicks[end]].at - ordered[clicks[start]].at > rules.burst_seconds:
            start += 1
        window = clicks[start : end + 1]
        if len({ordered[i].link for i in window}) >= rules.burst_links:
            for i in window:
                flags[i] = True
    return flags
