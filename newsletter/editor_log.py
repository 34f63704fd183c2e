"""Who changed what, and when: every change an editor makes in the console is an `EditorEvent`,
added to the session of the change itself, so the two commit (or roll back) together."""

from __future__ import annotations

from sqlmodel import Session, col, select

from newsletter.models import EditorEvent

MAX_DETAIL = 2000


def record(
    session: Session,
    editor: str,
    action: str,
    *,
    issue_id: int | None = None,
    comparison_id: int | None = None,
    detail: str | None = None,
) -> EditorEvent:
    """Add the event to `session` (the caller's transaction commits it with the change)."""
    event = EditorEvent(
        editor=editor[:120],
        action=action[:40],
        issue_id=issue_id,
        comparison_id=comparison_id,
        detail=detail[:MAX_DETAIL] if detail else None,
    )
    session.add(event)
    return event


def issue_history(session: Session, issue_id: int, limit: int = 100) -> list[EditorEvent]:
    """The issue's events, newest first."""
    query = (
        select(EditorEvent)
        .where(EditorEvent.issue_id == issue_id)
        .order_by(col(EditorEvent.id).desc())
        .limit(limit)
    )
    return list(session.exec(query))


def recent(session: Session, limit: int = 20) -> list[EditorEvent]:
    """The latest events of every kind, newest first."""
    return list(session.exec(select(EditorEvent).order_by(col(EditorEvent.id).desc()).limit(limit)))
