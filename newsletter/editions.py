"""Composing an issue from the week's pick and moving it through its states.

One issue per ISO week, ever. A draft is refreshed by composing again; once approved, sending or sent,
its picks are fixed, and a cancelled week stays cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import delete
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.content import comparison_views
from newsletter.curation import Week, pick
from newsletter.headers import HeaderValueError, check_header_value
from newsletter.models import Comparison, Issue, IssueItem, IssueStatus, utcnow
from newsletter.render import default_preheader, default_subject, masthead_from
from newsletter.views import IssueView

MAX_SUBJECT = 150
MAX_PREHEADER = 250


class EditionError(RuntimeError):
    """An issue cannot do what was asked in its current state; the message says why."""


class ComposeOutcome(StrEnum):
    CREATED = "created"
    REFRESHED = "refreshed"
    UNCHANGED = "unchanged"  # already approved, sending, sent or cancelled: picks are fixed
    EMPTY = "empty"


@dataclass(frozen=True)
class ComposeResult:
    outcome: ComposeOutcome
    week: Week
    issue: Issue | None
    picks: list[Comparison]


def find_issue(session: Session, week: Week) -> Issue | None:
    return session.exec(select(Issue).where(Issue.week == week.label)).first()


def require_issue(session: Session, week: Week) -> Issue:
    issue = find_issue(session, week)
    if issue is None:
        raise EditionError(
            f"there is no issue for {week}; run `newsletter issue compose --week {week}` first"
        )
    return issue


def compose(session: Session, week: Week, settings: Settings) -> ComposeResult:
    """Create or refresh the week's draft from the current pick; an empty week creates nothing."""
    issue = find_issue(session, week)
    if issue is not None and issue.status != IssueStatus.DRAFT:
        return ComposeResult(ComposeOutcome.UNCHANGED, week, issue, issue_comparisons(session, issue))
    picks = pick(session, week, settings.zone, settings.issue_size, for_issue_id=issue.id if issue else None)
    if not picks:
        return ComposeResult(ComposeOutcome.EMPTY, week, issue, [])
    outcome = ComposeOutcome.REFRESHED
    if issue is None:
        issue = Issue(week=week.label)
        outcome = ComposeOutcome.CREATED
    issue.updated_at = utcnow()
    session.add(issue)
    session.flush()
    session.exec(delete(IssueItem).where(col(IssueItem.issue_id) == issue.id))
    session.add_all(IssueItem(issue_id=issue.id, comparison_id=c.id, position=i) for i, c in enumerate(picks))
    session.flush()
    return ComposeResult(outcome, week, issue, picks)


def issue_comparisons(session: Session, issue: Issue) -> list[Comparison]:
    query = (
        select(Comparison)
        .join(IssueItem, col(IssueItem.comparison_id) == Comparison.id)
        .where(IssueItem.issue_id == issue.id)
        .order_by(IssueItem.position)
    )
    return list(session.exec(query))


def set_overrides(
    session: Session,
    issue: Issue,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    reset: bool = False,
) -> Issue:
    """An editor's subject or preheader replaces the generated one; empty text or `reset` restores it."""
    if issue.status not in (IssueStatus.DRAFT, IssueStatus.APPROVED):
        raise EditionError(
            f"issue {issue.week} is {issue.status}; only a draft or approved issue can be edited"
        )
    try:
        if reset:
            issue.subject_override = issue.preheader_override = None
        if subject is not None:
            issue.subject_override = (
                check_header_value(subject, max_length=MAX_SUBJECT, field="subject")
                if subject.strip()
                else None
            )
        if preheader is not None:
            issue.preheader_override = (
                check_header_value(preheader, max_length=MAX_PREHEADER, field="preheader")
                if preheader.strip()
                else None
            )
    except HeaderValueError as exc:
        raise EditionError(str(exc)) from exc
    issue.updated_at = utcnow()
    session.add(issue)
    return issue


def variant_comparisons(
    session: Session, issue: Issue, settings: Settings, categories: frozenset[str] | None
) -> list[Comparison]:
    """What readers who chose `categories` get: the issue's own picks when they chose all (None), else
    the week's pick within their categories, by the same rules (it may be empty)."""
    if categories is None:
        return issue_comparisons(session, issue)
    return pick(
        session,
        Week.parse(issue.week),
        settings.zone,
        settings.issue_size,
        for_issue_id=issue.id,
        categories=categories,
    )


def issue_view(
    session: Session, issue: Issue, settings: Settings, comparisons: list[Comparison] | None = None
) -> IssueView:
    """Everything the renderer needs for `issue` (or for a readers' variant of it, `comparisons`).

    The editor's subject and preheader apply to the issue as composed; a variant with other
    comparisons gets its own generated ones, since the editor's words may name what it lacks.
    """
    own = issue_comparisons(session, issue)
    chosen = own if comparisons is None else comparisons
    views = tuple(comparison_views(session, chosen, settings.site_url))
    if not views:
        raise EditionError(f"issue {issue.week} has no comparisons")
    edited = [c.id for c in chosen] == [c.id for c in own]
    return IssueView(
        week=issue.week,
        slug=issue.slug,
        subject=(issue.subject_override if edited else None) or default_subject(views),
        preheader=(issue.preheader_override if edited else None) or default_preheader(views),
        comparisons=views,
        week_start=Week.parse(issue.week).monday,
        masthead=masthead_from(settings),
    )


def approve(session: Session, issue: Issue, settings: Settings) -> Issue:
    """draft -> approved, once the issue renders and passes the quality checks."""
    if issue.status == IssueStatus.APPROVED:
        return issue
    if issue.status != IssueStatus.DRAFT:
        raise EditionError(f"issue {issue.week} is {issue.status}; only a draft can be approved")
    check_sendable(session, issue, settings)
    issue.status, issue.approved_at, issue.updated_at = IssueStatus.APPROVED, utcnow(), utcnow()
    session.add(issue)
    return issue


def check_sendable(session: Session, issue: Issue, settings: Settings) -> None:
    """Raise EditionError unless the issue renders into something that can be sent."""
    from newsletter.render import Renderer, RenderError

    try:
        Renderer().render_issue(issue_view(session, issue, settings))
    except RenderError as exc:
        raise EditionError(f"issue {issue.week} cannot be sent: {exc}") from exc


def cancel(session: Session, issue: Issue) -> Issue:
    """A draft or approved issue will never be sent; its week stays taken."""
    if issue.status not in (IssueStatus.DRAFT, IssueStatus.APPROVED):
        raise EditionError(
            f"issue {issue.week} is {issue.status}; only a draft or approved issue can be cancelled"
        )
    issue.status, issue.updated_at = IssueStatus.CANCELLED, utcnow()
    session.add(issue)
    return issue
