"""Composing an issue from the week's pick and moving it through its states.

One issue per ISO week, ever. A draft is refreshed by composing again; once approved, sending or sent,
its picks are fixed, and a cancelled week stays cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.curation import Week, pick
from newsletter.headers import HeaderValueError, check_header_value
from newsletter.issue_reads import EditionError, issue_view, missing_issue  # noqa: F401  (issue_view: shared)
from newsletter.lengths import preheader_problem, subject_problem
from newsletter.models import Comparison, Issue, IssueItem, IssueStatus, utcnow

if TYPE_CHECKING:
    from newsletter.quality import Report


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
        raise missing_issue(week)
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
    """An editor's subject or preheader replaces the generated one; empty text or `reset` restores it.

    The lengths are the quality gate's own rules (`newsletter.lengths`): an edit the check would
    refuse is refused here, with the same words."""
    if issue.status not in (IssueStatus.DRAFT, IssueStatus.APPROVED):
        raise EditionError(
            f"issue {issue.week} is {issue.status}; only a draft or approved issue can be edited"
        )
    if reset:
        issue.subject_override = issue.preheader_override = None
    if subject is not None:
        issue.subject_override = _checked(subject, "subject", subject_problem)
    if preheader is not None:
        issue.preheader_override = _checked(preheader, "preheader", preheader_problem)
    issue.updated_at = utcnow()
    session.add(issue)
    return issue


def _checked(text: str, field: str, problem_of) -> str | None:
    """`text` stripped, None for blank text (the generated words come back), or EditionError."""
    if not text.strip():
        return None
    try:
        value = check_header_value(text, field=field)
    except HeaderValueError as exc:
        raise EditionError(str(exc)) from exc
    problem = problem_of(value)
    if problem:
        raise EditionError(problem)
    return value


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


def approve(session: Session, issue: Issue, settings: Settings, *, force: bool = False) -> Report:
    """draft -> approved, once the issue renders and passes the same quality checks as a send.

    A failing check raises GateFailed (its report holds the findings) unless `force`; the size
    limit is never forced (Gmail would hide the unsubscribe link). Approving an approved issue
    checks it again and changes nothing. Returns the checks' report (warnings, forced errors)."""
    from newsletter.quality import enforce

    if issue.status not in (IssueStatus.DRAFT, IssueStatus.APPROVED):
        raise EditionError(f"issue {issue.week} is {issue.status}; only a draft can be approved")
    report = check_sendable(session, issue, settings)
    consequence = (
        "it was not approved"
        if issue.status == IssueStatus.DRAFT
        else "it stays approved, but no scheduled send will send it"
    )
    enforce(report, issue.week, force=force, consequence=consequence, override="approve it anyway")
    if issue.status == IssueStatus.DRAFT:
        issue.status, issue.approved_at, issue.updated_at = IssueStatus.APPROVED, utcnow(), utcnow()
        session.add(issue)
    return report


def check_sendable(session: Session, issue: Issue, settings: Settings) -> Report:
    """The quality checks of the issue as composed; EditionError when it does not even render."""
    from newsletter.quality import check_issue
    from newsletter.rendered import RenderError

    try:
        return check_issue(session, issue, settings)
    except RenderError as exc:
        raise EditionError(f"issue {issue.week} cannot be sent: {exc}") from exc


def cancel(session: Session, issue: Issue) -> Issue:
    """The issue will never be sent (any further); its week stays taken.

    A draft or approved issue just becomes cancelled. A send that stopped part-way (a fatal
    provider or disk error, a crash) can be cancelled too once no sender is working on it: the
    readers still queued are suppressed with the reason `send cancelled by an editor`, deliveries
    left in flight by a dead sender are suppressed as of unknown outcome, and what was sent or
    failed stays as it is. A send with a live sender is refused: stop it first."""
    from newsletter import ledger

    if issue.status == IssueStatus.SENDING:
        try:
            ledger.cancel_send(session, issue.id)
        except ledger.SendInProgress as exc:
            raise EditionError(str(exc)) from exc
        session.refresh(issue)
        return issue
    if issue.status not in (IssueStatus.DRAFT, IssueStatus.APPROVED):
        raise EditionError(
            f"issue {issue.week} is {issue.status}; only a draft, approved or stopped issue can be cancelled"
        )
    issue.status, issue.updated_at = IssueStatus.CANCELLED, utcnow()
    session.add(issue)
    return issue


def unapprove(session: Session, issue: Issue) -> Issue:
    """approved -> draft: the scheduled send will not send it until it is approved again.

    A conditional update, so that a send that opened the issue a moment earlier (the scheduler, a
    worker, another editor) is seen and never turned back into a draft."""
    moved = session.execute(
        update(Issue)
        .where(col(Issue.id) == issue.id, col(Issue.status) == IssueStatus.APPROVED)
        .values(status=IssueStatus.DRAFT, approved_at=None, updated_at=utcnow())
    ).rowcount
    session.refresh(issue)
    if not moved:
        raise EditionError(f"issue {issue.week} is {issue.status}; only an approved issue can be unapproved")
    return issue


# --- an editor's changes to the pick (a draft's only) ------------------------------------------------


def _hold_draft(session: Session, issue: Issue) -> None:
    """Take the issue's row for this transaction, if it is still a draft (EditionError if not): the
    write comes first, so an approve or a send racing this change waits for it or refuses it."""
    held = session.execute(
        update(Issue)
        .where(col(Issue.id) == issue.id, col(Issue.status) == IssueStatus.DRAFT)
        .values(updated_at=utcnow())
    ).rowcount
    session.refresh(issue)
    if not held:
        raise EditionError(
            f"issue {issue.week} is {issue.status}; only a draft's comparisons can be changed "
            "(unapprove it first)"
        )


def _items(session: Session, issue: Issue) -> list[IssueItem]:
    query = select(IssueItem).where(IssueItem.issue_id == issue.id).order_by(col(IssueItem.position))
    return list(session.exec(query))


def _renumber(session: Session, items: list[IssueItem]) -> None:
    for position, item in enumerate(items):
        item.position = position
        session.add(item)
    session.flush()


def move_item(session: Session, issue: Issue, comparison_id: int, offset: int) -> list[Comparison]:
    """Move one comparison of a draft `offset` places down the pick (negative: up), within its
    bounds; returns the new order."""
    _hold_draft(session, issue)
    items = _items(session, issue)
    index = next((i for i, item in enumerate(items) if item.comparison_id == comparison_id), None)
    if index is None:
        raise EditionError(f"issue {issue.week} does not carry that comparison")
    target = max(0, min(len(items) - 1, index + offset))
    items.insert(target, items.pop(index))
    _renumber(session, items)
    return issue_comparisons(session, issue)


def drop_item(session: Session, issue: Issue, comparison_id: int) -> Comparison:
    """Take one comparison out of a draft (it becomes eligible again); the last one stays."""
    _hold_draft(session, issue)
    items = _items(session, issue)
    item = next((item for item in items if item.comparison_id == comparison_id), None)
    if item is None:
        raise EditionError(f"issue {issue.week} does not carry that comparison")
    if len(items) == 1:
        raise EditionError(f"issue {issue.week} needs at least one comparison; add another first")
    session.delete(item)
    session.flush()
    _renumber(session, [other for other in items if other is not item])
    return session.get(Comparison, comparison_id)


def addable(session: Session, issue: Issue, settings: Settings) -> list[Comparison]:
    """Comparisons the editor may add to the draft: published in its week, not carried by another
    approved, sending or sent issue, not in it already (in the pick's order)."""
    carried = {item.comparison_id for item in _items(session, issue)}
    everything = pick(session, Week.parse(issue.week), settings.zone, 10_000, for_issue_id=issue.id)
    return [comparison for comparison in everything if comparison.id not in carried]


def add_item(session: Session, issue: Issue, comparison_id: int, settings: Settings) -> Comparison:
    """Put an eligible comparison at the end of a draft, within NEWSLETTER_ISSUE_SIZE."""
    _hold_draft(session, issue)
    items = _items(session, issue)
    if len(items) >= settings.issue_size:
        raise EditionError(
            f"issue {issue.week} already has {len(items)} comparison(s), the most an issue carries "
            "(NEWSLETTER_ISSUE_SIZE); drop one first"
        )
    chosen = next((c for c in addable(session, issue, settings) if c.id == comparison_id), None)
    if chosen is None:
        raise EditionError(
            f"that comparison cannot go into {issue.week}: it is not published that week, or another "
            "issue carries it, or this one does already"
        )
    session.add(IssueItem(issue_id=issue.id, comparison_id=chosen.id, position=len(items)))
    session.flush()
    return chosen
