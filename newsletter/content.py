"""The content store: storing imported comparisons, and reading them back with their derived figures.

Panel ship % comes from the review rows and community % from the vote rows, every time they are read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlmodel import Session, col, select

from newsletter.identity import Mention, clash_with_store, name_key, store_clash_reason
from newsletter.issue_reads import (  # noqa: F401  (the reads of derived figures, as before)
    community_shares,
    comparison_views,
    panel_shares,
)
from newsletter.models import Comparison, Review, Reviewer, Tool, Vote, utcnow

if TYPE_CHECKING:  # the import format (pydantic models, YAML) loads only where something is imported
    from newsletter.importing import ComparisonIn, ImportProblem, Located, ToolIn

IMPORTED_VOTER_PREFIX = "site:"


@dataclass(frozen=True)
class ImportSummary:
    created: list[str]
    updated: list[str]

    @property
    def total(self) -> int:
        return len(self.created) + len(self.updated)


def import_files(session: Session, paths: Sequence[Path], zone: ZoneInfo) -> ImportSummary:
    """Validate every file, then check every tool and reviewer against the store (a derived slug
    held by another name is a clash: `newsletter.identity`), then store all of them; any problem
    raises ImportFailed and stores nothing."""
    from newsletter.importing import ImportFailed, parse_located

    found = parse_located(list(paths))
    problems = store_clashes(session, found)
    if problems:
        raise ImportFailed(problems)
    return store_comparisons(session, [located.comparison for located in found], zone)


def store_clashes(session: Session, found: Sequence[Located]) -> list[ImportProblem]:
    """Tools and reviewers whose derived slug the store already gives to another name."""
    from newsletter.importing import reviewer_mentions, tool_mentions

    problems = []
    for kind, mentions_of, model, field in (
        ("tool", tool_mentions, Tool, "slug"),
        ("reviewer", reviewer_mentions, Reviewer, "reviewer_slug"),
    ):
        named = [(located, mention, steps) for located in found for mention, steps in mentions_of(located)]
        stored = _stored_names(session, model, {mention.slug for _, mention, _ in named})
        reported: set[tuple[str, str]] = set()
        for located, mention, steps in named:
            held = stored.get(mention.slug)
            if (
                held is None
                or not clash_with_store(mention, held)
                or (mention.slug, mention.name) in reported
            ):
                continue
            reported.add((mention.slug, mention.name))
            problems.append(located.problem(store_clash_reason(kind, mention, held, field), *steps))
    return problems


def _stored_names(session: Session, model, slugs: set[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    ordered = sorted(slugs)
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        names.update(session.exec(select(model.slug, model.name).where(col(model.slug).in_(chunk))).all())
    return names


def store_comparisons(session: Session, items: Iterable[ComparisonIn], zone: ZoneInfo) -> ImportSummary:
    """Create or update comparisons by slug, in the caller's transaction.

    Reviews and the site's vote tally are replaced as a whole; readers' own votes are kept.
    Naive publication times are read in the configured time zone.
    """
    created: list[str] = []
    updated: list[str] = []
    tools: dict[str, Tool] = {}
    reviewers: dict[str, Reviewer] = {}
    now = utcnow()
    for item in items:
        left = _upsert_tool(session, tools, item.tools.left, now)
        right = _upsert_tool(session, tools, item.tools.right, now)
        published = item.published_at if item.published_at.tzinfo else item.published_at.replace(tzinfo=zone)
        comparison = session.exec(select(Comparison).where(Comparison.slug == item.slug)).first()
        fields = {
            "title": item.display_title,
            "dek": item.dek,
            "category": item.category or item.tools.left.category,
            "left_tool_id": left.id,
            "right_tool_id": right.id,
            "url": item.url,
            "pinned": item.pinned,
            "published_at": published,
            "updated_at": now,
        }
        if comparison is None:
            comparison = Comparison(slug=item.slug, **fields)
            created.append(item.slug)
        else:
            comparison.sqlmodel_update(fields)
            updated.append(item.slug)
        session.add(comparison)
        session.flush()
        _replace_reviews(session, comparison, item, {"left": left, "right": right}, reviewers)
        _replace_site_votes(session, comparison, item, {"left": left, "right": right}, now)
    session.flush()
    return ImportSummary(created, updated)


def _upsert_tool(session: Session, cache: dict[str, Tool], data: ToolIn, now: datetime) -> Tool:
    slug = data.key
    tool = cache.get(slug) or session.exec(select(Tool).where(Tool.slug == slug)).first()
    if tool is not None:
        _guard(Mention(slug, data.slug is not None, data.name, "this run"), tool.name, slug in cache, "tool")
    fields = data.model_dump(exclude={"slug"}) | {"updated_at": now}
    if tool is None:
        tool = Tool(slug=slug, **fields)
    else:
        tool.sqlmodel_update(fields)
    session.add(tool)
    session.flush()
    cache[slug] = tool
    return tool


def _replace_reviews(
    session: Session,
    comparison: Comparison,
    item: ComparisonIn,
    tools: dict[str, Tool],
    cache: dict[str, Reviewer],
) -> None:
    session.exec(delete(Review).where(col(Review.comparison_id) == comparison.id))
    for position, review in enumerate(item.reviews):
        slug = review.key
        reviewer = cache.get(slug) or session.exec(select(Reviewer).where(Reviewer.slug == slug)).first()
        if reviewer is not None:
            mention = Mention(slug, review.reviewer_slug is not None, review.reviewer, "this run")
            _guard(mention, reviewer.name, slug in cache, "reviewer")
        if reviewer is None:
            reviewer = Reviewer(slug=slug, name=review.reviewer, lens=review.lens)
        else:
            reviewer.name, reviewer.lens = review.reviewer, review.lens
        session.add(reviewer)
        session.flush()
        cache[slug] = reviewer
        session.add(
            Review(
                comparison_id=comparison.id,
                tool_id=tools[review.tool].id,
                reviewer_id=reviewer.id,
                position=position,
                verdict=review.verdict,
                quote=review.quote,
            )
        )


def _guard(mention: Mention, held: str, in_this_run: bool, kind: str) -> None:
    """The last line of the identity rule for callers that store without `import_files` (the
    samples): never let two names share one row silently."""
    from newsletter.importing import ImportFailed, ImportProblem

    differs = name_key(mention.name) != name_key(held)
    if (in_this_run and differs) or clash_with_store(mention, held):
        field = "slug" if kind == "tool" else "reviewer_slug"
        raise ImportFailed([ImportProblem("(import)", kind, store_clash_reason(kind, mention, held, field))])


def _replace_site_votes(
    session: Session, comparison: Comparison, item: ComparisonIn, tools: dict[str, Tool], now: datetime
) -> None:
    """The site's tally arrives as counts; it is stored as one row per vote so readers' votes add to it."""
    session.exec(
        delete(Vote).where(
            col(Vote.comparison_id) == comparison.id, col(Vote.voter).startswith(IMPORTED_VOTER_PREFIX)
        )
    )
    rows = []
    for side in ("left", "right"):
        tally = getattr(item.community, side)
        tool_id = tools[side].id
        for verdict, count in (("ship", tally.ship), ("skip", tally.skip)):
            rows.extend(
                {
                    "comparison_id": comparison.id,
                    "tool_id": tool_id,
                    "voter": f"{IMPORTED_VOTER_PREFIX}{side}-{verdict}-{n}",
                    "verdict": verdict,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(count)
            )
    if rows:
        session.execute(Vote.__table__.insert(), rows)
