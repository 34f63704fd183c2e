"""A comparison's page, public (`/compare/{slug}`), and the same page opened from a vote link in an
issue: the GET shows the vote with its button, only the POST records it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import select
from starlette.exceptions import HTTPException

from newsletter.content import comparison_views
from newsletter.db import session_scope
from newsletter.models import Comparison
from newsletter.notices import READER_PURPOSE
from newsletter.tracking.issue_links import issue_for_token
from newsletter.votes import UnknownTarget, record_vote, vote_target
from newsletter.web.common import State, WebState
from newsletter.web.reader_pages import link_reader, render, verify

router = APIRouter()


@router.get("/vote/{token}/{comparison_slug}/{tool_slug}/{verdict}", response_class=HTMLResponse)
def vote_page(
    request: Request, state: State, token: str, comparison_slug: str, tool_slug: str, verdict: str
) -> Response:
    return _vote(request, state, token, comparison_slug, tool_slug, verdict, record=False)


@router.post("/vote/{token}/{comparison_slug}/{tool_slug}/{verdict}", response_class=HTMLResponse)
def vote_submit(
    request: Request, state: State, token: str, comparison_slug: str, tool_slug: str, verdict: str
) -> Response:
    return _vote(request, state, token, comparison_slug, tool_slug, verdict, record=True)


def _vote(
    request: Request,
    state: WebState,
    token: str,
    comparison_slug: str,
    tool_slug: str,
    verdict: str,
    *,
    record: bool,
) -> Response:
    claims = verify(state, token, READER_PURPOSE)
    with session_scope(state.engine) as session:
        link_reader(session, claims)  # a reader who is gone votes no more
        try:
            comparison, tool = vote_target(session, comparison_slug, tool_slug, verdict)
        except UnknownTarget as exc:
            raise HTTPException(404, f"Nothing to vote on here: {exc}.") from exc
        if record:
            issue_id = issue_for_token(session, claims.expires_at)
            record_vote(session, claims.subject, comparison, tool, verdict, issue_id)
            session.flush()
        (view,) = comparison_views(session, [comparison], state.settings.site_url)
    notice = (
        f"Thanks, your vote is in: {'ship' if verdict == 'ship' else 'skip'} {tool.name}." if record else None
    )
    vote = None if record else {"tool": tool_slug, "verdict": verdict, "url": request.url.path}
    return render(request, state, "web/comparison.html.j2", comparison=view, vote=vote, notice=notice)


@router.get("/compare/{slug}", response_class=HTMLResponse)
def comparison_page(request: Request, state: State, slug: str) -> Response:
    with session_scope(state.engine) as session:
        comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
        if comparison is None:
            raise HTTPException(404, "There is no comparison at this address.")
        (view,) = comparison_views(session, [comparison], state.settings.site_url)
    return render(
        request, state, "web/comparison.html.j2", comparison=view, vote=None, notice=None, robots="index"
    )
