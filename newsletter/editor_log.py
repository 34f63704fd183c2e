"""Who changed what, and when: every change an editor makes, in the console, with a command or
through the scheduler, is an `EditorEvent` added to the session of the change itself, so the two
commit (or roll back) together.

Who: the console's editor by name; `cli:<user>` for a command (the operating system's user who ran
it: the CLI has no login of its own); `scheduler` for what the scheduler does on its own."""

from __future__ import annotations

import getpass
import os

from sqlmodel import Session, col, select

from newsletter.models import EditorEvent

MAX_DETAIL = 2000
SCHEDULER = "scheduler"


def cli_editor() -> str:
    """`cli:<user>`: whoever runs the command, as the operating system names them."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name and no passwd entry for this uid (a bare container)
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


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
