"""Plain data the renderer reads. No database and no ORM here, so rendering can be tested on its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

NO_VOTES = "—"


@dataclass(frozen=True, slots=True)
class Share:
    """A derived figure: how many of `total` said ship. Shown as a whole percentage or "—" if empty."""

    ship: int
    total: int

    def __post_init__(self) -> None:
        if not 0 <= self.ship <= self.total:
            raise ValueError(f"ship count {self.ship} outside 0..{self.total}")

    @property
    def percent(self) -> int | None:
        """Rounded half up, so 1 of 8 is 13% (not banker's 12%); None when nobody voted."""
        if self.total == 0:
            return None
        return (self.ship * 200 + self.total) // (self.total * 2)

    @property
    def label(self) -> str:
        percent = self.percent
        return NO_VOTES if percent is None else f"{percent}%"

    @property
    def split(self) -> float:
        """1.0 for an even split, 0.0 for a unanimous one (or no votes)."""
        if self.total == 0:
            return 0.0
        return 1.0 - abs(2 * self.ship - self.total) / self.total


def panel_split(left: Share, right: Share) -> float:
    """How divided the panel is over a comparison: the mean of both tools' splits (1.0 = evenly split)."""
    return (left.split + right.split) / 2


@dataclass(frozen=True, slots=True)
class ReviewView:
    reviewer: str
    lens: str
    verdict: str
    quote: str


@dataclass(frozen=True, slots=True)
class ToolView:
    slug: str
    name: str
    vendor: str | None
    category: str
    tagline: str
    description: str
    entry_price: str
    url: str | None
    panel: Share
    community: Share
    reviews: tuple[ReviewView, ...] = ()


TOOL_FIELDS = ("name", "vendor", "category", "tagline", "description", "entry_price", "url")


def tool_view(source, *, slug: str, panel: Share, community: Share, reviews) -> ToolView:
    """A ToolView from anything that carries a tool's descriptive fields: a stored Tool, an imported
    ToolIn; the figures and reviews come from wherever that source keeps them."""
    return ToolView(
        slug=slug,
        panel=panel,
        community=community,
        reviews=tuple(reviews),
        **{name: getattr(source, name) for name in TOOL_FIELDS},
    )


@dataclass(frozen=True, slots=True)
class ScorecardRow:
    """One lens across both tools, as the page's scorecard reads it."""

    lens: str
    reviewer: str
    left: ReviewView | None
    right: ReviewView | None


@dataclass(frozen=True, slots=True)
class ComparisonView:
    slug: str
    title: str
    dek: str
    category: str
    url: str
    left: ToolView
    right: ToolView
    pinned: bool = False

    @property
    def tools(self) -> tuple[ToolView, ToolView]:
        return (self.left, self.right)

    @property
    def split(self) -> float:
        return panel_split(self.left.panel, self.right.panel)

    @property
    def scorecard(self) -> list[ScorecardRow]:
        """Rows by lens in the panel's order, pairing each reviewer's quote on the left and right tool."""
        rows: dict[tuple[str, str], list[ReviewView | None]] = {}
        for side, tool in enumerate(self.tools):
            for review in tool.reviews:
                rows.setdefault((review.lens, review.reviewer), [None, None])[side] = review
        return [ScorecardRow(lens, reviewer, pair[0], pair[1]) for (lens, reviewer), pair in rows.items()]


@dataclass(frozen=True, slots=True)
class Masthead:
    """Who sends the newsletter: shown in every header and footer."""

    name: str
    site_url: str
    postal_address: str

    @property
    def site_host(self) -> str:
        return self.site_url.removeprefix("https://").split("/", 1)[0]


@dataclass(frozen=True, slots=True)
class IssueView:
    """Everything one issue shows, before any reader's personal links are filled in."""

    week: str
    slug: str
    subject: str
    preheader: str
    comparisons: tuple[ComparisonView, ...]
    week_start: date
    masthead: Masthead
