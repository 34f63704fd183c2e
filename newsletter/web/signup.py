"""Joining: the signup page and form, the "check your inbox" page, and the confirmation link's page,
whose button (a POST: mail scanners follow every GET) subscribes the reader and owes them the welcome.
`signup` is the one signup step of the form, the JSON API and a reader coming back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from newsletter import links, welcome
from newsletter.db import session_scope
from newsletter.editions import issue_view
from newsletter.headers import HeaderValueError
from newsletter.models import Issue, IssueStatus
from newsletter.notices import CONFIRM_PURPOSE, NoticeKind
from newsletter.subscriptions import Outcome, RateLimited, Signup, confirm, request_signup
from newsletter.web.common import State, WebState, error_response, wants_json
from newsletter.web.reader_pages import (
    CsrfField,
    FormText,
    client_address,
    gone,
    message,
    render,
    send_notice,
    site_origin,
    too_many,
    verify,
)
from newsletter.web.security import origin_allowed
from newsletter.welcome import owe_welcome

router = APIRouter()
log = logging.getLogger("newsletter.web")


@router.get("/", response_class=HTMLResponse)
def signup_page(request: Request, state: State) -> Response:
    return render(
        request,
        state,
        "web/signup.html.j2",
        promise=state.settings.promise,
        latest=latest_issue(state),
        error=None,
        email=None,
        robots="index",
    )


def latest_issue(state: WebState) -> dict | None:
    with session_scope(state.engine) as session:
        issue = session.exec(
            select(Issue).where(Issue.status == IssueStatus.SENT).order_by(col(Issue.sent_at).desc())
        ).first()
        if issue is None:
            return None
        view = issue_view(session, issue, state.settings)
    return {"headline": view.subject, "url": f"/issues/{view.slug}"}


@router.post("/subscribe")
async def subscribe_form(
    request: Request,
    state: State,
    background: BackgroundTasks,
    email: FormText = "",
    website: FormText = "",
    csrf: CsrfField = "",
) -> Response:
    own = site_origin(state.settings.site_url)  # never the client's Host header
    cookie_ok = state.csrf.valid(request.cookies.get(state.csrf.cookie), csrf)
    if not (cookie_ok or origin_allowed(request.headers.get("origin"), own, state.settings.embed_origin_set)):
        return signup_refused(request, state, 403, email, "This form had expired. Please submit it again.")
    outcome = await signup(request, state, background, email, website, source="form")
    if isinstance(outcome, Response):
        return outcome
    return RedirectResponse("/check-your-inbox", status_code=303)


def signup_refused(request: Request, state: WebState, status: int, email: str, error: str) -> Response:
    """The signup page again, with the address as typed and why it was not taken."""
    return render(
        request,
        state,
        "web/signup.html.j2",
        status,
        promise=state.settings.promise,
        latest=None,
        email=email[:254],
        error=error,
    )


async def signup(
    request: Request, state: WebState, background: BackgroundTasks, email: str, website: str, *, source: str
) -> Response | None:
    """The shared signup step of the form and the JSON API; None means "say check your inbox"."""
    if website:
        return None  # a bot filled the hidden field: tell it the same as everyone, do nothing
    client = client_address(request)
    retry = state.client_limiter.hit(client)
    if retry:
        return too_many(request, state, retry)

    try:
        # On the event loop, not in the thread pool: the transaction is about a millisecond, and
        # handing it to a thread made it wait for the GIL while holding SQLite's write lock.
        with session_scope(state.engine) as session:
            result = request_signup(
                session, email, source=source, client=client, per_address=state.per_address
            )
    except HeaderValueError as exc:
        if wants_json(request):
            return error_response(request, 422, str(exc))
        return signup_refused(request, state, 422, email, f"Please check the address: {exc}.")
    except RateLimited as exc:
        return too_many(request, state, exc.retry_after)
    kind = NoticeKind.CONFIRM if result.action == Signup.CONFIRM else NoticeKind.ALREADY_SUBSCRIBED
    background.add_task(send_notice, state, kind, result.subscriber_id, result.email)
    return None


async def send_welcome(state: WebState, subscriber_id: int) -> None:
    """After the confirmation's response, like the confirmation email itself: a failure leaves the
    welcome owed for the scheduler's retry, and is logged."""
    try:
        await welcome.deliver(state.engine, state.settings, state.letters, state.provider, [subscriber_id])
    except Exception:
        log.exception("could not send the welcome email to subscriber %s", subscriber_id)


@router.get("/check-your-inbox", response_class=HTMLResponse)
def check_inbox(request: Request, state: State) -> Response:
    return message(
        request,
        state,
        "Check your inbox",
        "If the address can receive email, a message from us is on its way. Open it and press the "
        "button inside to confirm.",
        "Nothing there after a few minutes? Look in your spam folder, or sign up again.",
    )


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, state: State, token: str) -> Response:
    verify(state, token, CONFIRM_PURPOSE)
    return message(
        request,
        state,
        "Confirm your subscription",
        f"One more click and {state.masthead.name} arrives every week.",
        action={"url": f"/confirm/{token}", "label": "Confirm"},
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(request: Request, state: State, background: BackgroundTasks, token: str) -> Response:
    claims = verify(state, token, CONFIRM_PURPOSE)
    issued = datetime.fromtimestamp(claims.expires_at, UTC) - timedelta(
        days=state.settings.confirm_token_days
    )
    with session_scope(state.engine) as session:
        outcome = confirm(
            session, claims.subject, issued, client=client_address(request), key=state.settings.signing_key()
        )
        # Owed in the confirmation's own transaction, sent after it commits (newsletter.welcome).
        owed = outcome == Outcome.DONE and state.settings.welcome and owe_welcome(session, claims.subject)
    if owed:
        background.add_task(send_welcome, state, claims.subject)
    if outcome in (Outcome.DONE, Outcome.ALREADY):
        preferences = links.preferences_url("", state.notices.reader_token(claims.subject))
        return message(
            request,
            state,
            "You're subscribed" if outcome == Outcome.DONE else "You were already in",
            f"The next issue of {state.masthead.name} will reach you on its way out.",
            page_links=[{"url": preferences, "label": "Your preferences"}],
        )
    if outcome == Outcome.STALE:
        return message(
            request,
            state,
            "This confirmation link is from an earlier request",
            "Please sign up again and use the newest email we send you.",
            status=410,
            page_links=[{"url": "/", "label": "Sign up again"}],
        )
    return gone(request, state)
