"""A send's ledger as it moves: `GET /issues/{key}/progress` (JSON), which the issue's page polls
to update its figures without a reload. The page itself renders the same figures, so a plain
refresh (no JavaScript) shows the same. Read from the ledger alone: whoever sends, it is right."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter.console.issue_pages import issue_key
from newsletter.console.state import Console, ConsoleState
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import find_issue
from newsletter.send_progress import send_progress

router = APIRouter()


def _progress(state: ConsoleState, key: str) -> dict | None:
    with session_scope(state.store()) as session:
        issue = find_issue(session, Week.parse(key))
        if issue is None:
            return None
        answer = send_progress(session, issue.id).as_json()
    run = state.sends.run_of(issue.id)
    answer["console_run"] = {"state": run.state, "message": run.message} if run else None
    return answer


@router.get("/issues/{key}/progress")
async def progress(state: Console, key: str) -> Response:
    key = issue_key(key)
    answer = await run_in_threadpool(_progress, state, key)
    if answer is None:
        raise HTTPException(404, f"There is no issue {key}.")
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})
