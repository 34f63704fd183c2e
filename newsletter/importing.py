"""The import file format for comparisons, and turning a file into validated data or precise errors.

A file holds one comparison (a mapping) or a list of them, as JSON (`.json`) or YAML (`.yaml`, `.yml`).
Every error names the file, the place in it (a path, and for YAML the line) and the reason. The text
is read within bounds (`newsletter.documents`: depth, size, aliases, number lengths) before any data
is built; which tool a name means, and when two names clash on one slug, is `newsletter.identity`.
Storing is `content.store_comparisons`' job; nothing here touches the database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from yaml.nodes import MappingNode, Node, SequenceNode

from newsletter.documents import DocumentRefused, load_json, load_yaml
from newsletter.identity import Mention, clash_in_run, run_clash_reason, slugify
from newsletter.text_rules import https_url_problem, text_problem

__all__ = ["ComparisonIn", "ImportFailed", "ImportProblem", "Located", "parse_files", "slugify"]

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_COMPARISONS_PER_FILE = 1_000
MAX_PROBLEMS_PER_FILE = 50
EARLIEST_PUBLICATION = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_PUBLICATION = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
MAX_QUOTE_CHARS = 4_000
MAX_DESCRIPTION_CHARS = 5_000
MAX_VOTES_PER_SIDE = 100_000
SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SIDES = ("left", "right")


def _https_url(value: str) -> str:
    if problem := https_url_problem(value):
        raise ValueError(problem)
    return value


def _single_line(value: str) -> str:
    if problem := text_problem(value):
        raise ValueError(f"must be a single line of text: {problem}")
    return value


def _multiline(value: str) -> str:
    if problem := text_problem(value, multiline=True):
        raise ValueError(problem)
    return value


def _publication_time(value: datetime) -> datetime:
    """Within 2000..2099 and convertible to UTC; a naive time is read in NEWSLETTER_TIMEZONE later,
    which moves it by hours, far from the limits of what a datetime can hold."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{value.isoformat()} cannot be converted to UTC") from exc
    if not EARLIEST_PUBLICATION <= utc < LATEST_PUBLICATION:
        raise ValueError(
            f"{value.isoformat()} is outside {EARLIEST_PUBLICATION:%Y-%m-%d} .. "
            f"{LATEST_PUBLICATION.year - 1}-12-31; a publication time must be in that window"
        )
    return value


def _text(max_length: int, *, single_line: bool = True):
    """A stored string: trimmed, not empty, bounded, without control characters or lone surrogates
    (a multi-line one may hold tabs and line breaks)."""
    base = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)]
    return Annotated[base, AfterValidator(_single_line if single_line else _multiline)]


HttpsUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=2000), AfterValidator(_https_url)
]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=120)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolIn(_Strict):
    name: _text(200)
    slug: Slug | None = None
    vendor: _text(200) | None = None
    category: _text(100)
    tagline: _text(300)
    description: _text(MAX_DESCRIPTION_CHARS, single_line=False)
    entry_price: _text(100)
    url: HttpsUrl | None = None

    @property
    def key(self) -> str:
        return self.slug or slugify(self.name)


class ReviewIn(_Strict):
    tool: Literal["left", "right"]
    reviewer: _text(200)
    reviewer_slug: Slug | None = None
    lens: _text(100)
    verdict: Literal["ship", "skip"]
    quote: _text(MAX_QUOTE_CHARS, single_line=False)

    @property
    def key(self) -> str:
        return self.reviewer_slug or slugify(self.reviewer)


class TallyIn(_Strict):
    ship: int = Field(0, ge=0, le=MAX_VOTES_PER_SIDE)
    skip: int = Field(0, ge=0, le=MAX_VOTES_PER_SIDE)


class PairIn(_Strict):
    left: ToolIn
    right: ToolIn


class CommunityIn(_Strict):
    left: TallyIn = TallyIn()
    right: TallyIn = TallyIn()


class ComparisonIn(_Strict):
    slug: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=200)]
    title: _text(300) | None = None
    dek: _text(600)
    category: _text(100) | None = None
    published_at: Annotated[datetime, AfterValidator(_publication_time)]
    pinned: bool = False
    url: HttpsUrl | None = None
    tools: PairIn
    reviews: list[ReviewIn] = Field(min_length=1, max_length=200)
    community: CommunityIn = CommunityIn()

    @model_validator(mode="after")
    def _consistent(self) -> ComparisonIn:
        if self.tools.left.key == self.tools.right.key:
            raise ValueError(f"left and right are the same tool ({self.tools.left.key})")
        seen: set[tuple[str, str]] = set()
        for review in self.reviews:
            key = (review.tool, review.key)
            if key in seen:
                raise ValueError(f"{review.reviewer} reviews the {review.tool} tool more than once")
            seen.add(key)
        return self

    @property
    def display_title(self) -> str:
        return self.title or f"{self.tools.left.name} vs {self.tools.right.name}"


_ONE = TypeAdapter(ComparisonIn)
_MANY = TypeAdapter(Annotated[list[ComparisonIn], Field(max_length=MAX_COMPARISONS_PER_FILE)])


@dataclass(frozen=True)
class ImportProblem:
    """One reason a file cannot be imported, with where it is."""

    file: str
    place: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.place}: {self.reason}" if self.place else f"{where}: {self.reason}"


class ImportFailed(Exception):
    """The run is refused as a whole; `problems` lists every reason found."""

    def __init__(self, problems: list[ImportProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Located:
    """A validated comparison with where it came from: the file, its position in it, and (YAML)
    its node, for line numbers in later messages."""

    file: str
    index: int
    comparison: ComparisonIn
    node: Node | None = None

    def place(self, *steps: str | int) -> str:
        return _place_of(self.comparison.slug, [str(step) for step in steps])

    def line(self, *steps: str | int) -> int | None:
        return _node_line(self.node, list(steps)) if self.node is not None else None

    def problem(self, reason: str, *steps: str | int) -> ImportProblem:
        return ImportProblem(self.file, self.place(*steps), reason, self.line(*steps))


def parse_files(paths: list[Path]) -> list[ComparisonIn]:
    """Validate every file; return all comparisons, or raise ImportFailed naming every problem."""
    return [located.comparison for located in parse_located(paths)]


def parse_located(paths: list[Path]) -> list[Located]:
    """Validate every file, then the run as a whole (a slug twice, two names on one tool slug);
    every comparison with where it came from, or ImportFailed naming every problem."""
    problems: list[ImportProblem] = []
    found: list[Located] = []
    origin: dict[str, str] = {}
    for path in paths:
        try:
            items, nodes = _parse_file(path)
        except ImportFailed as failed:
            problems.extend(failed.problems)
            continue
        for index, item in enumerate(items):
            if item.slug in origin:
                problems.append(
                    ImportProblem(
                        str(path),
                        f"comparison {index + 1}",
                        f"slug {item.slug!r} also in {origin[item.slug]}",
                    )
                )
            origin[item.slug] = str(path)
            found.append(Located(str(path), index, item, nodes[index] if nodes else None))
    problems.extend(run_clashes(found))
    if problems:
        raise ImportFailed(problems)
    return found


def tool_mentions(located: Located) -> list[tuple[Mention, tuple[str, ...]]]:
    """Each tool the comparison names, with the path of its name in the file."""
    tools = located.comparison.tools
    return [
        (
            Mention(
                tool.key, tool.slug is not None, tool.name, f"{located.file} ({located.place('tools', side)})"
            ),
            ("tools", side, "name"),
        )
        for side, tool in (("left", tools.left), ("right", tools.right))
    ]


def reviewer_mentions(located: Located) -> list[tuple[Mention, tuple[str | int, ...]]]:
    """Each reviewer the comparison names, with the path of the name in the file."""
    return [
        (
            Mention(
                review.key,
                review.reviewer_slug is not None,
                review.reviewer,
                f"{located.file} ({located.place('reviews', index)})",
            ),
            ("reviews", index, "reviewer"),
        )
        for index, review in enumerate(located.comparison.reviews)
    ]


def run_clashes(found: list[Located]) -> list[ImportProblem]:
    """Tools (and reviewers) of one run whose slugs agree and whose names do not."""
    problems = []
    for kind, mentions_of, field in (
        ("tool", tool_mentions, "slug"),
        ("reviewer", reviewer_mentions, "reviewer_slug"),
    ):
        first: dict[str, Mention] = {}
        reported: set[tuple[str, str]] = set()
        for located in found:
            for mention, steps in mentions_of(located):
                seen = first.setdefault(mention.slug, mention)
                if clash_in_run(seen, mention) and (mention.slug, mention.name) not in reported:
                    reported.add((mention.slug, mention.name))
                    problems.append(located.problem(run_clash_reason(kind, seen, mention, field), *steps))
    return problems


def _parse_file(path: Path) -> tuple[list[ComparisonIn], list[Node | None] | None]:
    """Read and validate one file: its comparisons and (YAML) their nodes."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in {".json", ".yaml", ".yml"}:
        raise ImportFailed([ImportProblem(name, "", "unsupported file type; use .json, .yaml or .yml")])
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImportFailed(
                [ImportProblem(name, "", f"file is {size:,} bytes; at most {MAX_FILE_BYTES:,}")]
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImportFailed([ImportProblem(name, "", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise ImportFailed([ImportProblem(name, "", f"not UTF-8 text (byte {exc.start})")]) from exc
    return _parse(text, name=name, is_yaml=suffix != ".json")


def parse_file(path: Path) -> list[ComparisonIn]:
    """Read and validate one file."""
    return _parse_file(path)[0]


def parse_text(text: str, *, name: str, is_yaml: bool) -> list[ComparisonIn]:
    """Validate a document's text; `name` is only used in messages."""
    return _parse(text, name=name, is_yaml=is_yaml)[0]


def _parse(text: str, *, name: str, is_yaml: bool) -> tuple[list[ComparisonIn], list[Node | None] | None]:
    if len(text) > MAX_FILE_BYTES:
        raise ImportFailed(
            [ImportProblem(name, "", f"the text is {len(text):,} characters; at most {MAX_FILE_BYTES:,}")]
        )
    node = None
    try:
        if is_yaml:
            data, node = load_yaml(text)
        else:
            data = load_json(text)
    except DocumentRefused as exc:
        place = f"column {exc.column}" if exc.column else ""
        raise ImportFailed([ImportProblem(name, place, exc.reason, exc.line)]) from exc
    except json.JSONDecodeError as exc:
        raise ImportFailed([ImportProblem(name, f"column {exc.colno}", exc.msg, exc.lineno)]) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark else None
        raise ImportFailed(
            [ImportProblem(name, f"column {mark.column + 1}" if mark else "", reason, line)]
        ) from exc
    if data is None:
        raise ImportFailed([ImportProblem(name, "", "the file is empty")])
    if not isinstance(data, (dict, list)):
        raise ImportFailed(
            [ImportProblem(name, "document", "must be one comparison (a mapping) or a list of them")]
        )
    try:
        if isinstance(data, list):
            items = _MANY.validate_python(data)
            nodes = list(node.value) if isinstance(node, SequenceNode) else None
            return items, nodes
        return [_ONE.validate_python(data)], [node]
    except ValidationError as exc:
        raise ImportFailed(_problems(exc, data, node, name)) from exc


def _problems(exc: ValidationError, data: Any, node: Node | None, name: str) -> list[ImportProblem]:
    problems = []
    seen = set()
    errors = exc.errors(include_url=False)
    for error in errors:
        loc = list(error["loc"])
        place, reason = _describe(loc, error, data)
        if (place, reason) in seen:
            continue
        seen.add((place, reason))
        if len(problems) == MAX_PROBLEMS_PER_FILE:
            problems.append(
                ImportProblem(name, "", f"and more problems ({len(errors):,} in all); fix these first")
            )
            break
        problems.append(
            ImportProblem(name, place, reason, _node_line(node, loc) if node is not None else None)
        )
    return problems


def _place_of(slug: str, steps: list[str]) -> str:
    path = ""
    for step in steps:
        path += f"[{step}]" if step.isdigit() else (f".{step}" if path else step)
    return f"comparison ({slug})" + (f" > {path}" if path else "")


def _describe(loc: list, error: dict, data: Any) -> tuple[str, str]:
    """A readable place (comparison 2 'slug' > reviews[3].verdict) and reason for one pydantic error."""
    parts: list[str] = []
    node = data
    for step in loc:
        if isinstance(step, int):
            if not parts and isinstance(data, list):
                slug = node[step].get("slug") if isinstance(node[step], dict) else None
                shown = f" ({_shown_slug(slug)})" if isinstance(slug, str) and slug else ""
                parts.append(f"comparison {step + 1}{shown}")
            else:
                parts[-1:] = [f"{parts[-1] if parts else ''}[{step}]"]
        else:
            parts.append(str(step))
        node = node[step] if isinstance(node, (dict, list)) and _has(node, step) else None
    reason = _reason(error, loc)
    if isinstance(data, dict):
        slug = data.get("slug")
        parts.insert(0, f"comparison ({_shown_slug(slug)})" if isinstance(slug, str) else "comparison")
    if not parts:
        return "document", reason
    head, *rest = parts
    if head.startswith("comparison "):
        return (head + (" > " + ".".join(rest) if rest else "")), reason
    return ".".join(parts), reason


def _shown_slug(slug: str) -> str:
    """A slug as a message may show it: as written when it is one, else quoted and cut short (it may
    hold a terminal's escape sequences)."""
    if re.fullmatch(SLUG_PATTERN, slug) and len(slug) <= 200:
        return slug
    return repr(slug[:60] + ("..." if len(slug) > 60 else ""))


def _has(node: Any, step: Any) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(step, int) and 0 <= step < len(node)


def _reason(error: dict, loc: list) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        if len(loc) >= 2 and loc[-2] in ("tools", "community"):
            return f"unknown tool side {loc[-1]!r}; use 'left' or 'right'"
        return f"unknown field {loc[-1]!r}"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        if loc and loc[-1] == "verdict":
            return f"verdict must be 'ship' or 'skip', not {given!r}"
        if loc and loc[-1] == "tool":
            return f"unknown tool side {given!r}; use 'left' or 'right'"
        return f"must be one of {expected}, not {given!r}"
    if kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        return f"is {len(given):,} characters long; at most {limit:,} are allowed"
    if kind == "string_pattern_mismatch":
        return f"{str(given)[:80]!r} is not a slug (lower-case letters, digits and single hyphens)"
    if kind == "string_unicode":
        return "holds a lone surrogate (half of a UTF-16 pair); not valid text"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, not {type(given).__name__}"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def _node_line(node: Node | None, loc: list) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node else None
    for step in loc:
        child = None
        if isinstance(node, MappingNode):
            child = next((value for key, value in node.value if key.value == step), None)
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            child = node.value[step]
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
