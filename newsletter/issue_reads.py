"""Reading an issue as readers get it: its comparisons with their reviews and derived figures (panel
and community ship %), its view (subject, preheader), its ledger counts.

One copy of these reads, as SQL text with `:name` parameters, serves every caller. The ORM paths
pass their Session (SQLAlchemy's `text()` runs the SQL, autoflush included); `newsletter issue show`
passes a `newsletter.plain_store.PlainReader`, a DB-API connection of the driver alone, so that
command loads neither SQLAlchemy nor the table models (issue 16: it must start in under 300 ms;
bench/startup.py). The tables are named here only by the columns these reads use (COLUMNS);
tests/test_startup_imports.py checks every one against the models' tables.
"""

# ruff: noqa: S608  (every statement here is built from this module's constants; values are parameters)
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from newsletter.issue_words import default_preheader, default_subject
from newsletter.views import ComparisonView, IssueView, ReviewView, Share, masthead_from, tool_view
from newsletter.weeks import Week, issue_slug

if TYPE_CHECKING:
    from newsletter.config import Settings

COMPARISON_FIELDS = (
    "id",
    "slug",
    "title",
    "dek",
    "category",
    "url",
    "left_tool_id",
    "right_tool_id",
    "pinned",
)
ISSUE_FIELDS = ("id", "week", "status", "subject_override", "preheader_override")
TOOL_FIELDS = ("id", "slug", "name", "vendor", "category", "tagline", "description", "entry_price", "url")
# Every column these reads name, by table (checked against the models by a test).
COLUMNS: dict[str, tuple[str, ...]] = {
    "issue": ISSUE_FIELDS,
    "issueitem": ("issue_id", "comparison_id", "position"),
    "comparison": COMPARISON_FIELDS,
    "tool": TOOL_FIELDS,
    "reviewer": ("id", "name", "lens"),
    "review": ("comparison_id", "tool_id", "reviewer_id", "position", "verdict", "quote"),
    "vote": ("comparison_id", "tool_id", "verdict"),
    "delivery": ("issue_id", "status"),
}


class EditionError(RuntimeError):
    """An issue cannot do what was asked in its current state; the message says why."""


def rows(reader: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    """`sql`'s rows (attributes by column name) through `reader`: a PlainReader, or a SQLAlchemy
    Connection or ORM Session (which flushes what the caller added first, as for its own queries)."""
    plain = getattr(reader, "plain_rows", None)
    if plain is not None:
        return plain(sql, params or {})
    from sqlalchemy import text  # loaded already wherever a Session or Connection exists

    return list(reader.execute(text(sql), params or {}))


def fields(alias: str, names: Iterable[str]) -> str:
    """`alias.a, alias.b, ...`: a select list of a table's named columns."""
    return ", ".join(f"{alias}.{name}" for name in names)


def in_list(name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name_0, :name_1, ...)` and its parameters: an IN list both drivers take."""
    params = {f"{name}_{index}": value for index, value in enumerate(values)}
    return "(" + ", ".join(f":{key}" for key in params) + ")", params


def find_issue(reader: Any, week: Week) -> Any | None:
    """The week's issue (id, week, status and the editor's words), or None."""
    sql = f"SELECT {fields('i', ISSUE_FIELDS)} FROM issue AS i WHERE i.week = :week"
    found = rows(reader, sql, {"week": week.label})
    return found[0] if found else None


def missing_issue(week: Week) -> EditionError:
    return EditionError(f"there is no issue for {week}; run `newsletter issue compose --week {week}` first")


def issue_comparison_rows(reader: Any, issue_id: int) -> list[Any]:
    """The issue's comparisons in reading order (the columns of COMPARISON_FIELDS)."""
    sql = (
        f"SELECT {fields('c', COMPARISON_FIELDS)} FROM comparison AS c"
        " JOIN issueitem AS item ON item.comparison_id = c.id"
        " WHERE item.issue_id = :issue_id ORDER BY item.position"
    )
    return rows(reader, sql, {"issue_id": issue_id})


def issue_view(
    reader: Any, issue: Any, settings: Settings, comparisons: Sequence[Any] | None = None
) -> IssueView:
    """Everything the renderer needs for `issue` (or for a readers' variant of it, `comparisons`).

    The editor's subject and preheader apply to the issue as composed; a variant with other
    comparisons gets its own generated ones, since the editor's words may name what it lacks.
    """
    own = issue_comparison_rows(reader, issue.id)
    chosen = own if comparisons is None else comparisons
    views = tuple(comparison_views(reader, chosen, settings.site_url))
    if not views:
        raise EditionError(f"issue {issue.week} has no comparisons")
    edited = [c.id for c in chosen] == [c.id for c in own]
    return IssueView(
        week=issue.week,
        slug=issue_slug(issue.week),
        subject=(issue.subject_override if edited else None) or default_subject(views),
        preheader=(issue.preheader_override if edited else None) or default_preheader(views),
        comparisons=views,
        week_start=Week.parse(issue.week).monday,
        masthead=masthead_from(settings),
    )


def delivery_counts(reader: Any, issue_id: int) -> dict[str, int]:
    """How many of the issue's ledger rows are in each status."""
    sql = "SELECT d.status, COUNT(*) AS n FROM delivery AS d WHERE d.issue_id = :issue_id GROUP BY d.status"
    return {status: count for status, count in rows(reader, sql, {"issue_id": issue_id})}


def panel_shares(reader: Any, comparison_ids: Sequence[int]) -> dict[tuple[int, int], Share]:
    """Panel ship share per (comparison, tool), from the review rows."""
    return _shares(reader, "review", comparison_ids)


def community_shares(reader: Any, comparison_ids: Sequence[int]) -> dict[tuple[int, int], Share]:
    """Community ship share per (comparison, tool), from the vote rows."""
    return _shares(reader, "vote", comparison_ids)


def _shares(reader: Any, table: str, comparison_ids: Sequence[int]) -> dict[tuple[int, int], Share]:
    counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    if not comparison_ids:
        return {}
    ids, params = in_list("comparison", comparison_ids)
    sql = (
        f"SELECT t.comparison_id, t.tool_id, t.verdict, COUNT(*) AS n FROM {table} AS t"
        f" WHERE t.comparison_id IN {ids} GROUP BY t.comparison_id, t.tool_id, t.verdict"
    )
    for comparison_id, tool_id, verdict, count in rows(reader, sql, params):
        entry = counts[(comparison_id, tool_id)]
        entry[1] += count
        if verdict == "ship":
            entry[0] += count
    return {key: Share(ship, total) for key, (ship, total) in counts.items()}


def comparison_views(reader: Any, comparisons: Sequence[Any], site_url: str) -> list[ComparisonView]:
    """Plain views of `comparisons` (stored Comparisons or rows of COMPARISON_FIELDS, in the given
    order) with reviews and derived figures, in four queries."""
    ids = [c.id for c in comparisons]
    if not ids:
        return []
    tool_ids = {c.left_tool_id for c in comparisons} | {c.right_tool_id for c in comparisons}
    tool_list, tool_params = in_list("tool", sorted(tool_ids))
    tool_sql = f"SELECT {fields('t', TOOL_FIELDS)} FROM tool AS t WHERE t.id IN {tool_list}"
    tools = {t.id: t for t in rows(reader, tool_sql, tool_params)}
    reviews: dict[tuple[int, int], list[ReviewView]] = defaultdict(list)
    id_list, id_params = in_list("comparison", ids)
    review_sql = (
        "SELECT r.comparison_id, r.tool_id, r.verdict, r.quote, w.name, w.lens"
        " FROM review AS r JOIN reviewer AS w ON w.id = r.reviewer_id"
        f" WHERE r.comparison_id IN {id_list} ORDER BY r.comparison_id, r.position"
    )
    for review in rows(reader, review_sql, id_params):
        reviews[(review.comparison_id, review.tool_id)].append(
            ReviewView(reviewer=review.name, lens=review.lens, verdict=review.verdict, quote=review.quote)
        )
    panel = panel_shares(reader, ids)
    community = community_shares(reader, ids)
    empty = Share(0, 0)

    def view_of_tool(comparison, tool_id: int):
        tool = tools[tool_id]
        key = (comparison.id, tool_id)
        return tool_view(
            tool,
            slug=tool.slug,
            panel=panel.get(key, empty),
            community=community.get(key, empty),
            reviews=reviews[key],
        )

    return [
        ComparisonView(
            slug=c.slug,
            title=c.title,
            dek=c.dek,
            category=c.category,
            url=c.url or f"{site_url}/compare/{c.slug}",
            left=view_of_tool(c, c.left_tool_id),
            right=view_of_tool(c, c.right_tool_id),
            pinned=bool(c.pinned),
        )
        for c in comparisons
    ]
