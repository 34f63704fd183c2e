"""What the console previews (the preview studio it grew from), and when it must show it again.

An entry is the package's sample issue, this week's draft (or the pick it would get), or a stored
issue. Each preview is rendered once per fingerprint: the email templates' names, sizes and mtimes
plus a few aggregates of the store that move whenever content, votes or an issue change. Pages poll
the fingerprint and reload when it moves; a frame asks for the cached render instead of compiling
the issue again.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import TemplateError
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import EditionError, find_issue
from newsletter.models import Comparison, Issue, IssueItem, Tool, Vote
from newsletter.preview import week_view
from newsletter.quality import Report, check_rendered
from newsletter.render import Renderer, RenderError
from newsletter.samples import sample_issue
from newsletter.views import IssueView

SAMPLE = "sample"
LISTED_ISSUES = 52
_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """A line of the console's list of issues."""

    key: str
    label: str
    status: str
    subject: str


@dataclass(frozen=True)
class Preview:
    """One rendered issue as the preview reader gets it, with its gate findings."""

    key: str
    fingerprint: str
    status: str
    view: IssueView
    report: Report | None
    error: str | None = None  # the templates do not compile: say why instead of showing a frame

    @property
    def html(self) -> str:
        return self.report.message.html if self.report else ""

    @property
    def text(self) -> str:
        return self.report.message.text if self.report else ""

    def dark_html(self) -> str:
        """The HTML with its dark-mode rules applied unconditionally, as a dark-mode client shows it
        whatever the editor's own system setting is."""
        return _DARK_QUERY.sub("@media all", self.html)


class Sources:
    """The console's previews: entries, fingerprints and cached renders. Reads the store only."""

    def __init__(self, settings: Settings, engine: Engine | None, templates: Path | None = None):
        self.settings = settings
        self.engine = engine
        self.renderer = Renderer(templates)
        self.templates = self.renderer.directory
        self._cache: dict[str, Preview] = {}
        self._lock = threading.Lock()

    # --- what there is ------------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """The sample, this week (its issue or the pick it would get), then the stored issues."""
        sample = sample_issue(self.settings, datetime.now(UTC))
        rows = [Entry(SAMPLE, "Sample issue (package content)", "sample", sample.subject)]
        if self.engine is None:
            return rows
        this_week = Week.containing(datetime.now(UTC), self.settings.zone)
        with session_scope(self.engine) as session:
            issues = session.exec(select(Issue).order_by(col(Issue.week).desc()).limit(LISTED_ISSUES)).all()
            if this_week.label not in {issue.week for issue in issues}:
                view = week_view(session, this_week, self.settings)
                if view is not None:
                    rows.append(Entry(this_week.label, this_week.label, "not composed yet", view.subject))
            for issue in issues:
                rows.append(Entry(issue.week, issue.week, issue.status, self._subject(session, issue)))
        return rows

    def _subject(self, session: Session, issue: Issue) -> str:
        try:
            view = week_view(session, Week.parse(issue.week), self.settings)
        except EditionError as exc:
            return f"({exc})"
        return view.subject if view else ""

    def view(self, key: str) -> tuple[IssueView, str] | None:
        """The issue behind `key` and its state, built fresh from the store (or the package, for the
        sample); None when there is nothing to preview for it."""
        if key == SAMPLE:
            return sample_issue(self.settings, datetime.now(UTC)), "sample"
        if self.engine is None:
            return None
        week = Week.parse(key)
        with session_scope(self.engine) as session:
            issue = find_issue(session, week)
            try:
                view = week_view(session, week, self.settings)
            except EditionError:  # an issue whose comparisons were all deleted: nothing to show
                return None
            status = issue.status if issue is not None else "not composed yet"
        return (view, status) if view is not None else None

    @staticmethod
    def normalise(key: str) -> str:
        """`sample`, or a week label in its canonical form; ValueError for anything else."""
        return SAMPLE if key == SAMPLE else Week.parse(key).label

    # --- when to show it again -------------------------------------------------------------------------

    def fingerprint(self, key: str) -> str:
        digest = hashlib.blake2b(digest_size=10)
        for path in sorted((self.templates / "email").rglob("*")):
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        if key != SAMPLE and self.engine is not None:
            digest.update(repr(self._store_state()).encode())
        return digest.hexdigest()

    def _store_state(self) -> tuple:
        """Aggregates that move with any change an issue shows: content, pins, votes, issues, picks."""
        queries = (
            select(func.max(Comparison.updated_at)).scalar_subquery(),
            select(func.count()).select_from(Comparison).where(col(Comparison.pinned)).scalar_subquery(),
            select(func.max(Tool.updated_at)).scalar_subquery(),
            select(func.count()).select_from(Vote).scalar_subquery(),
            select(func.max(Vote.updated_at)).scalar_subquery(),
            select(func.max(Issue.updated_at)).scalar_subquery(),
            select(func.count()).select_from(IssueItem).scalar_subquery(),
        )
        with self.engine.connect() as connection:
            return tuple(connection.execute(select(*queries)).one())

    # --- the render --------------------------------------------------------------------------------------

    def preview(self, key: str) -> Preview | None:
        """The cached preview when nothing it shows has changed, else a fresh render; None if `key`
        names nothing to preview."""
        fingerprint = self.fingerprint(key)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached
        found = self.view(key)
        if found is None:
            return None
        preview = self.render(key, fingerprint, *found)
        with self._lock:
            self._cache[key] = preview
        return preview

    def forget(self) -> None:
        """Drop every cached preview (the bench measures the render, not the cache)."""
        with self._lock:
            self._cache.clear()

    def render(self, key: str, fingerprint: str, view: IssueView, status: str) -> Preview:
        try:
            rendered = self.renderer.render_issue(view, check_size=False)
        except (RenderError, TemplateError) as exc:
            where = f" ({exc.name}, line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            error = f"{type(exc).__name__}{where}: {exc}"
            return Preview(key, fingerprint, status, view, None, error=error)
        report = check_rendered(rendered, self.settings, view.slug)
        return Preview(key, fingerprint, status, view, report)
