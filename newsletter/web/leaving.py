"""Leaving, and coming back: the unsubscribe link's page and its button (the browser's, and RFC 8058
one-click, `List-Unsubscribe=One-Click`, which is the same POST), and for a reader who already left,
the way back, through confirmation like anyone joining."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter.db import session_scope
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.notices import READER_PURPOSE
from newsletter.subscriptions import Outcome, unsubscribe
from newsletter.tracking.issue_links import issue_for_token
from newsletter.web.common import State, WebState
from newsletter.web.reader_pages import client_address, form_body, gone, link_reader, message, verify
from newsletter.web.signup import signup

router = APIRouter()
UNSUBSCRIBE_FORM = {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}
LEFT_LINES = {
    SubscriberStatus.UNSUBSCRIBED: "{email} unsubscribed{since} and gets no issue of {name}.",
    SubscriberStatus.BOUNCED: "Mail to {email} bounced{since}, so we stopped sending {name} there.",
    SubscriberStatus.COMPLAINED: "{email} marked an issue as spam{since}, so we stopped sending {name}.",
    SubscriberStatus.SUPPRESSED: "{email} had left our list on the platform we moved from, so we do not "
    "send {name} there.",
}


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, state: State, token: str) -> Response:
    claims = verify(state, token, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = link_reader(session, claims)
    if subscriber.status in LEFT_LINES:
        return left_page(request, state, token, subscriber)
    return message(
        request,
        state,
        "Unsubscribe?",
        f"{subscriber.email} will get no further issue of {state.masthead.name}.",
        action={"url": f"/unsubscribe/{token}", "label": "Unsubscribe"},
        page_links=[{"url": f"/preferences/{token}", "label": "Or pause, or pick categories instead"}],
    )


def left_page(request: Request, state: WebState, token: str, subscriber: Subscriber) -> Response:
    """A reader who already left is told so, and offered the way back: through confirmation, like
    anyone joining (the button only emails them a link; nothing changes until they press that)."""
    since = f" on {subscriber.unsubscribed_at:%d %B %Y}" if subscriber.unsubscribed_at else ""
    line = LEFT_LINES[subscriber.status].format(email=subscriber.email, since=since, name=state.masthead.name)
    return message(
        request,
        state,
        "You have left the list",
        line,
        "Changed your mind? Press the button and we will email you a link to confirm. Until you "
        "press the button in that email, nothing changes.",
        action={"url": f"/unsubscribe/{token}/come-back", "label": "Come back"},
    )


@router.post("/unsubscribe/{token}/come-back", response_class=HTMLResponse)
async def come_back(request: Request, state: State, background: BackgroundTasks, token: str) -> Response:
    """A reader who left asks to return: the same request as the signup form's (rate limits included),
    so they stay out until they confirm from their inbox."""
    claims = verify(state, token, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = link_reader(session, claims)
        address, active = subscriber.email, subscriber.status == SubscriberStatus.ACTIVE
    if address is None:
        return gone(request, state)
    if active:
        return message(
            request,
            state,
            "You are subscribed",
            f"{address} gets every issue of {state.masthead.name}; there is nothing to confirm.",
            page_links=[{"url": f"/preferences/{token}", "label": "Your preferences"}],
        )
    refused = await signup(request, state, background, address, "", source="come back")
    if refused is not None:
        return refused
    return message(
        request,
        state,
        "Check your inbox",
        f"We have sent a confirmation link to {address}. Press the button in it to get "
        f"{state.masthead.name} again; until then you stay off the list.",
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse, openapi_extra=form_body(UNSUBSCRIBE_FORM))
async def unsubscribe_submit(request: Request, state: State, token: str) -> Response:
    """The browser's button and RFC 8058 one-click (`List-Unsubscribe=One-Click`) both land here."""
    claims = verify(state, token, READER_PURPOSE)
    form = await request.form()
    source = "one-click" if form.get("List-Unsubscribe") == "One-Click" else "unsubscribe page"
    client = client_address(request)

    def store() -> Outcome:
        with session_scope(state.engine) as session:
            issue_id = issue_for_token(session, claims.expires_at)  # the issue it came from, if any
            return unsubscribe(session, claims.subject, source=source, client=client, issue_id=issue_id)

    await run_in_threadpool(store)
    return message(
        request,
        state,
        "You're unsubscribed",
        f"You will get no further issue of {state.masthead.name}. Changed your mind? Sign up again "
        "at any time.",
        page_links=[{"url": "/", "label": "Sign up again"}],
    )
