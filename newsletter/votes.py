"""Readers' votes from the email: one per reader per tool in a comparison; the last one counts."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from newsletter.models import Comparison, Tool, Verdict, Vote, utcnow
from newsletter.outgoing_webhooks.outbox import vote_recorded


class UnknownTarget(LookupError):
    """The comparison, the tool or the verdict in a vote link does not exist."""


def vote_target(
    session: Session, comparison_slug: str, tool_slug: str, verdict: str
) -> tuple[Comparison, Tool]:
    if verdict not in (Verdict.SHIP, Verdict.SKIP):
        raise UnknownTarget(f"a vote is 'ship' or 'skip', not {verdict!r}")
    comparison = session.exec(select(Comparison).where(Comparison.slug == comparison_slug)).first()
    if comparison is None:
        raise UnknownTarget(f"no comparison {comparison_slug!r}")
    tool = session.exec(select(Tool).where(Tool.slug == tool_slug)).first()
    if tool is None or tool.id not in (comparison.left_tool_id, comparison.right_tool_id):
        raise UnknownTarget(f"{tool_slug!r} is not a tool of {comparison_slug!r}")
    return comparison, tool


def record_vote(
    session: Session,
    subscriber_id: int,
    comparison: Comparison,
    tool: Tool,
    verdict: str,
    issue_id: int | None = None,
) -> None:
    """Insert or replace this reader's vote on this tool; `issue_id` is the issue whose link cast it.
    The `vote.recorded` webhook goes to the outbox in the same transaction."""
    voter = f"reader:{subscriber_id}"
    existing = session.exec(
        select(Vote).where(Vote.comparison_id == comparison.id, Vote.tool_id == tool.id, Vote.voter == voter)
    ).first()
    now = utcnow()
    if existing is not None:
        existing.verdict, existing.updated_at, existing.subscriber_id = verdict, now, subscriber_id
        existing.issue_id = issue_id
        session.add(existing)
        _tell_webhooks(session, subscriber_id, comparison, tool, verdict, issue_id)
        return
    try:
        with session.begin_nested():
            session.add(
                Vote(
                    comparison_id=comparison.id,
                    tool_id=tool.id,
                    voter=voter,
                    subscriber_id=subscriber_id,
                    verdict=verdict,
                    issue_id=issue_id,
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:  # the same reader voted twice at once: the other request won; apply ours on top
        record_vote(session, subscriber_id, comparison, tool, verdict, issue_id)
        return
    _tell_webhooks(session, subscriber_id, comparison, tool, verdict, issue_id)


def _tell_webhooks(
    session: Session,
    subscriber_id: int,
    comparison: Comparison,
    tool: Tool,
    verdict: str,
    issue_id: int | None,
) -> None:
    vote_recorded(
        session, subscriber_id, comparison=comparison.slug, tool=tool.slug, verdict=verdict, issue_id=issue_id
    )
