"""Who changed what, and when, across the store: every editor event, newest first, whether an editor
made it in the console, with a command (`cli:<user>`) or the scheduler on its own. An issue's own
page shows its events; this page shows them all, those of no issue (pins, imports, readers,
webhooks, logins) too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from newsletter.console.state import Console, ConsoleState, render
from newsletter.db import session_scope
from newsletter.models import EditorEvent, Issue

router = APIRouter()
SHOWN = 200


@dataclass(frozen=True)
class Activity:
    at: datetime
    editor: str
    action: str
    issue: str | None  # the week of the issue it changed
    detail: str | None


def activity(state: ConsoleState, limit: int = SHOWN) -> list[Activity]:
    """The newest `limit` events with the week of their issue."""
    with session_scope(state.store()) as session:
        rows = session.exec(
            select(EditorEvent.at, EditorEvent.editor, EditorEvent.action, Issue.week, EditorEvent.detail)
            .outerjoin(Issue, col(Issue.id) == EditorEvent.issue_id)
            .order_by(col(EditorEvent.id).desc())
            .limit(limit)
        )
        return [Activity(*row) for row in rows]


@router.get("/activity", response_class=HTMLResponse)
async def activity_page(request: Request, state: Console) -> Response:
    found = await run_in_threadpool(activity, state)
    return render(request, "web/console/activity.html.j2", events=found, shown=SHOWN)
