"""Plain data the renderer reads. No database and no ORM here, so rendering can be tested on its own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

NO_VOTES = "—"
NO_VOTES_YET = "No votes yet"  # what a reader reads where a community figure has no votes behind it
EXCERPT_MAX_CHARS = 240


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

    @property
    def excerpt(self) -> str:
        """The quote's first sentence, for issues that show the scorecard in short."""
        return first_sentence(self.quote)


# A sentence ends at . ! ? or … (closing quotes and brackets may follow) before a space and a capital,
# a digit or an opening quote. "3.5 Haiku", "e.g. Mistral" and "GPT-4o vs. Claude" do not end one.
_SENTENCE_END = re.compile(
    r"(?:(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\bcf)(?<!\bMr)(?<!\bMs)(?<!\bDr)(?<!\bSt)\.|[!?…])"
    r"[\"'”’)\]]*(?=\s+[A-Z0-9“‘\"'(])"
)


def first_sentence(text: str, limit: int = EXCERPT_MAX_CHARS) -> str:
    """The first sentence of `text`, at most `limit` characters: a longer one is cut at a word and
    ends in "…". Text without a sentence end counts as one sentence."""
    text = " ".join(text.split())
    match = _SENTENCE_END.search(text)
    sentence = text[: match.end()] if match else text
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:—–-") + "…"


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

    @property
    def community_label(self) -> str:
        """The community figure as a reader reads it: `82%`, or words (a bare dash reads like a glitch)."""
        return self.community.label if self.community.total else NO_VOTES_YET


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
class ScorecardCell:
    """One tool's review under one lens, or None where that tool has none."""

    tool: ToolView
    review: ReviewView | None


@dataclass(frozen=True, slots=True)
class ScorecardRow:
    """One lens across both tools, as the page's scorecard reads it: the left tool's cell, the right's."""

    lens: str
    left: ScorecardCell
    right: ScorecardCell

    @property
    def cells(self) -> tuple[ScorecardCell, ScorecardCell]:
        return (self.left, self.right)


def scorecard_rows(left: ToolView, right: ToolView) -> list[ScorecardRow]:
    """Rows by lens, in the panel's order (the left tool's reviews first, then any lens only the right
    one has), so each lens can be compared across the two tools.

    Lenses match whatever their case and spacing. Within a lens the same reviewer's two reviews share
    a row; a lens reviewed by different people on each side pairs them in order, so the lens still
    reads as one row. Only a lens with more reviews on one side than the other gets rows with one empty
    cell.
    """
    lenses: dict[str, tuple[str, list[ReviewView], list[ReviewView]]] = {}
    for side, tool in enumerate((left, right)):
        for review in tool.reviews:
            key = " ".join(review.lens.split()).casefold()
            entry = lenses.setdefault(key, (review.lens, [], []))
            entry[1 + side].append(review)
    rows = []
    for lens, on_left, on_right in lenses.values():
        for pair in _pair_by_reviewer(on_left, on_right):
            rows.append(ScorecardRow(lens, ScorecardCell(left, pair[0]), ScorecardCell(right, pair[1])))
    return rows


def _pair_by_reviewer(
    on_left: list[ReviewView], on_right: list[ReviewView]
) -> list[tuple[ReviewView | None, ReviewView | None]]:
    def who(review: ReviewView) -> str:
        return " ".join(review.reviewer.split()).casefold()

    right_by_name = {who(review): review for review in on_right}
    shared = {who(review) for review in on_left} & right_by_name.keys()
    spare = [review for review in on_right if who(review) not in shared]
    pairs: list[tuple[ReviewView | None, ReviewView | None]] = []
    for review in on_left:
        if who(review) in shared:
            pairs.append((review, right_by_name[who(review)]))
        else:
            pairs.append((review, spare.pop(0) if spare else None))
    pairs.extend((None, review) for review in spare)
    return pairs


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
        """The reviewer scorecard, one row per lens (see `scorecard_rows`)."""
        return scorecard_rows(self.left, self.right)


@dataclass(frozen=True, slots=True)
class Masthead:
    """Who sends the newsletter: shown in every header and footer."""

    name: str
    site_url: str
    postal_address: str
    scorecard: str = "full"  # NEWSLETTER_SCORECARD: `full` quotes, or each quote's first sentence

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


def masthead_from(settings) -> Masthead:
    """The masthead the settings describe."""
    return Masthead(
        name=settings.name,
        site_url=settings.site_url,
        postal_address=settings.postal_address,
        scorecard=settings.scorecard,
    )
