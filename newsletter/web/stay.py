"""The re-engagement question's one button: `GET /stay/{token}` shows it, only the POST keeps the
reader (mail scanners follow GETs; HEAD answers as GET). The token is signed for this purpose alone
(`newsletter.letters.STAY_PURPOSE`): a reader link or a confirmation link does not pass here, and a
stay link opens nothing else. A reader who was let go meanwhile is offered the way back, through
confirmation like anyone who left."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter import links
from newsletter.db import session_scope
from newsletter.letters import STAY_PURPOSE
from newsletter.models import SubscriberStatus
from newsletter.subscriptions import LEFT
from newsletter.sunset import Stay, stay
from newsletter.web.common import State
from newsletter.web.leaving import left_page
from newsletter.web.reader_pages import client_address, gone, link_reader, message, reader, verify

router = APIRouter()


@router.get("/stay/{token}", response_class=HTMLResponse)
def stay_page(request: Request, state: State, token: str) -> Response:
    claims = verify(state, token, STAY_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = link_reader(session, claims)
    if subscriber.status == SubscriberStatus.PENDING:
        return gone(request, state)
    if subscriber.status in LEFT:
        return left_page(request, state, state.letters.reader_token(subscriber.id), subscriber)
    return message(
        request,
        state,
        "Still want the weekly verdicts?",
        f"Press the button and {state.masthead.name} keeps coming to {subscriber.email}.",
        action={"url": f"/stay/{token}", "label": "Keep sending it"},
    )


@router.post("/stay/{token}", response_class=HTMLResponse)
async def stay_submit(request: Request, state: State, token: str) -> Response:
    claims = verify(state, token, STAY_PURPOSE)
    client = client_address(request)

    def store():
        with session_scope(state.engine) as session:
            outcome = stay(session, claims.subject, client=client)
            return outcome, reader(session, claims)

    outcome, subscriber = await run_in_threadpool(store)
    if outcome == Stay.GONE or subscriber is None:
        return gone(request, state)
    token_for_links = state.letters.reader_token(subscriber.id)
    if outcome == Stay.LEFT:
        return left_page(request, state, token_for_links, subscriber)
    return message(
        request,
        state,
        "Thank you, you're staying",
        f"{state.masthead.name} keeps coming every week. Want fewer? Pause it or pick your categories.",
        page_links=[{"url": links.preferences_url("", token_for_links), "label": "Your preferences"}],
    )
