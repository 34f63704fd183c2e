"""The readers' pages. Links in emails open a page with one button; only its POST changes anything,
so mail scanners that follow every GET change nothing. RFC 8058 one-click unsubscribe is that POST."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter import links
from newsletter.content import comparison_views
from newsletter.db import session_scope
from newsletter.editions import issue_view
from newsletter.headers import HeaderValueError, normalise_email
from newsletter.models import Comparison, Issue, IssueStatus, Subscriber, SubscriberStatus
from newsletter.notices import CONFIRM_PURPOSE, READER_PURPOSE, NoticeKind
from newsletter.subscriptions import (
    Outcome,
    RateLimited,
    Signup,
    chosen_categories,
    confirm,
    erase,
    export_data,
    find_by_email,
    pause,
    request_signup,
    set_categories,
    set_tracking,
    unsubscribe,
)
from newsletter.tokens import Claims, TokenError
from newsletter.tracking.issue_links import issue_for_token
from newsletter.votes import UnknownTarget, record_vote, vote_target
from newsletter.web.common import State, WebState, error_response, wants_json
from newsletter.web.security import CSRF_MAX_AGE, origin_allowed

router = APIRouter()
log = logging.getLogger("newsletter.web")
SAVED = {
    "pause": "Your pause is saved.",
    "resume": "Welcome back: the next issue will reach you.",
    "categories": "Your categories are saved.",
    "tracking-off": "Click tracking is off: from now on your clicks are not counted.",
    "tracking-on": "Click tracking is on. Thank you: it tells us which verdicts are read.",
}
TRACKING_NOTES = {
    "off": "We do not track opens or clicks in our emails.",
    "clicks": "We count which links in our emails are clicked (not opens); you can turn that off in "
    "your preferences.",
    "clicks+opens": "We count when our emails are opened and which links are clicked; you can turn "
    "that off in your preferences.",
}


# The forms whose routes read the body themselves, as the schema (/api/openapi.json) shows them.
UNSUBSCRIBE_FORM = {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}
PREFERENCES_FORM = {
    "action": {"type": "string", "enum": ["pause", "categories", "tracking"]},
    "tracking": {"type": "string", "enum": ["on", "off"]},
    "weeks": {"type": "integer", "minimum": 0, "maximum": 12},
    "category": {"type": "array", "items": {"type": "string"}},
}


def form_body(fields: dict) -> dict:
    schema = {"type": "object", "properties": fields}
    return {"requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": schema}}}}


def site_origin(site_url: str) -> str:
    """`https://host[:port]` of NEWSLETTER_SITE_URL: the origin this site's own forms post from."""
    scheme, _, rest = site_url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def render(request: Request, state: WebState, template: str, status: int = 200, **context) -> HTMLResponse:
    """A page; if it carries a form that needs a CSRF token, the matching cookie is set with it."""
    cookie = state.csrf.cookie_of(request.cookies)
    context.setdefault("csrf", state.csrf.token_for(cookie))
    context.setdefault("tracking_note", TRACKING_NOTES[state.settings.tracking])
    response = HTMLResponse(
        state.pages.get_template(template).render(masthead=state.masthead, **context), status_code=status
    )
    response.set_cookie(
        state.csrf.cookie,
        cookie,
        max_age=CSRF_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


def message(
    request: Request,
    state: WebState,
    heading: str,
    *paragraphs: str,
    status: int = 200,
    action: dict | None = None,
    manage_form: bool = False,
    page_links: list[dict] | None = None,
):
    return render(
        request,
        state,
        "web/message.html.j2",
        status,
        heading=heading,
        paragraphs=paragraphs,
        action=action,
        manage_form=manage_form,
        links=page_links or [],
    )


def verify(request: Request, state: WebState, token: str, purpose: str) -> Claims:
    try:
        return state.signer.verify(token, purpose)
    except TokenError as exc:
        status = 410 if exc.reason == "expired" else 400
        raise LinkRefused(status, exc.reason) from exc


class LinkRefused(Exception):
    def __init__(self, status: int, reason: str):
        self.status, self.reason = status, reason


def refused_link(request: Request, state: WebState, refusal: LinkRefused, purpose: str) -> Response:
    if wants_json(request):
        return error_response(request, refusal.status, f"the link {_REASON[refusal.reason]}")
    if purpose == CONFIRM_PURPOSE:
        return message(
            request,
            state,
            f"This confirmation link {_REASON[refusal.reason]}",
            "Please sign up again and use the newest email we send you.",
            status=refusal.status,
            page_links=[{"url": "/", "label": "Sign up again"}],
        )
    return message(
        request,
        state,
        f"This link {_REASON[refusal.reason]}",
        "Enter your address and we will email you a fresh link to your preferences, where you can "
        "also unsubscribe.",
        status=refusal.status,
        manage_form=True,
    )


_REASON = {"expired": "has expired", "invalid": "is not valid", "malformed": "is incomplete"}


def reader(session: Session, claims: Claims) -> Subscriber | None:
    subscriber = session.get(Subscriber, claims.subject)
    if subscriber is None or subscriber.status == SubscriberStatus.ERASED:
        return None
    return subscriber


def gone(request: Request, state: WebState) -> Response:
    return message(
        request,
        state,
        "This address is no longer on the list",
        "There is nothing to change. You can sign up again at any time.",
        status=410,
        page_links=[{"url": "/", "label": "Sign up"}],
    )


# --- signup -------------------------------------------------------------------------------------


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
    email: Annotated[str, Form(max_length=1000)] = "",
    website: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    own = site_origin(state.settings.site_url)  # never the client's Host header
    cookie_ok = state.csrf.valid(request.cookies.get(state.csrf.cookie), csrf)
    if not (cookie_ok or origin_allowed(request.headers.get("origin"), own, state.settings.embed_origin_set)):
        return render(
            request,
            state,
            "web/signup.html.j2",
            403,
            promise=state.settings.promise,
            latest=None,
            email=email[:254],
            error="This form had expired. Please submit it again.",
        )
    outcome = await signup(request, state, background, email, website, source="form")
    if isinstance(outcome, Response):
        return outcome
    return RedirectResponse("/check-your-inbox", status_code=303)


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
        return render(
            request,
            state,
            "web/signup.html.j2",
            422,
            promise=state.settings.promise,
            latest=None,
            email=email[:254],
            error=f"Please check the address: {exc}.",
        )
    except RateLimited as exc:
        return too_many(request, state, exc.retry_after)
    kind = NoticeKind.CONFIRM if result.action == Signup.CONFIRM else NoticeKind.ALREADY_SUBSCRIBED
    background.add_task(send_notice, state, kind, result.subscriber_id, result.email)
    return None


def too_many(request: Request, state: WebState, retry_after: int) -> Response:
    headers = {"Retry-After": str(retry_after)}
    if wants_json(request):
        return error_response(request, 429, f"too many signups; try again in {retry_after} s", headers)
    response = message(
        request,
        state,
        "Too many attempts",
        f"Please wait {retry_after} seconds before trying again.",
        status=429,
    )
    response.headers.update(headers)
    return response


async def send_notice(state: WebState, kind: NoticeKind, subscriber_id: int, email: str) -> None:
    """Sent after the response: a slow provider never slows the page. Failures are logged."""
    try:
        results = await state.provider.send_batch(
            [state.notices.message(kind, subscriber_id=subscriber_id, email=email)]
        )
        if not results[0].accepted:
            raise RuntimeError(results[0].error)
    except Exception:
        log.exception("could not send the %s email to subscriber %s", kind, subscriber_id)


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


# --- confirmation ---------------------------------------------------------------------------------


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, state: State, token: str) -> Response:
    try:
        verify(request, state, token, CONFIRM_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, CONFIRM_PURPOSE)
    return message(
        request,
        state,
        "Confirm your subscription",
        f"One more click and {state.masthead.name} arrives every week.",
        action={"url": f"/confirm/{token}", "label": "Confirm"},
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_submit(request: Request, state: State, token: str) -> Response:
    try:
        claims = verify(request, state, token, CONFIRM_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, CONFIRM_PURPOSE)
    issued = datetime.fromtimestamp(claims.expires_at, UTC) - timedelta(
        days=state.settings.confirm_token_days
    )
    with session_scope(state.engine) as session:
        outcome = confirm(
            session, claims.subject, issued, client=client_address(request), key=state.settings.signing_key()
        )
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


# --- unsubscribe ----------------------------------------------------------------------------------


LEFT_LINES = {
    SubscriberStatus.UNSUBSCRIBED: "{email} unsubscribed{since} and gets no issue of {name}.",
    SubscriberStatus.BOUNCED: "Mail to {email} bounced{since}, so we stopped sending {name} there.",
    SubscriberStatus.COMPLAINED: "{email} marked an issue as spam{since}, so we stopped sending {name}.",
    SubscriberStatus.SUPPRESSED: "{email} had left our list on the platform we moved from, so we do not "
    "send {name} there.",
}


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, state: State, token: str) -> Response:
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = reader(session, claims)
    if subscriber is None:
        return gone(request, state)
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
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = reader(session, claims)
        address = subscriber.email if subscriber else None
        active = subscriber is not None and subscriber.status == SubscriberStatus.ACTIVE
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
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
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


# --- preferences ----------------------------------------------------------------------------------


def known_categories(session: Session) -> list[str]:
    return sorted(set(session.exec(select(Comparison.category))))


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, state: State, token: str, saved: str | None = None) -> Response:
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = reader(session, claims)
        categories = known_categories(session)
    if subscriber is None:
        return gone(request, state)
    return preferences_view(request, state, token, subscriber, categories, saved=SAVED.get(saved or ""))


def preferences_view(
    request: Request,
    state: WebState,
    token: str,
    subscriber: Subscriber,
    categories: list[str],
    *,
    saved: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    paused = subscriber.paused_until is not None and subscriber.paused_until > datetime.now(UTC)
    status_line = {
        SubscriberStatus.ACTIVE: f"paused until {subscriber.paused_until:%d %B %Y}"
        if paused
        else "subscribed",
        SubscriberStatus.PENDING: "waiting for your confirmation",
    }.get(subscriber.status, "not subscribed")
    return render(
        request,
        state,
        "web/preferences.html.j2",
        status,
        subscriber=subscriber,
        status_line=status_line,
        paused=paused,
        categories=categories,
        chosen=chosen_categories(subscriber),
        saved=saved,
        error=error,
        tracking=state.settings.tracking,
        url=f"/preferences/{token}",
        unsubscribe_url=f"/unsubscribe/{token}",
    )


@router.post("/preferences/{token}", response_class=HTMLResponse, openapi_extra=form_body(PREFERENCES_FORM))
async def preferences_submit(request: Request, state: State, token: str) -> Response:
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    form = await request.form()
    action = form.get("action")
    client = client_address(request)

    def store() -> Response:
        with session_scope(state.engine) as session:
            subscriber = reader(session, claims)
            categories = known_categories(session)
            if subscriber is None:
                return gone(request, state)
            try:
                if action == "pause":
                    weeks = int(str(form.get("weeks", "")))
                    pause(session, subscriber, weeks, client=client)
                    saved = "pause" if weeks else "resume"
                elif action == "categories":
                    set_categories(
                        session,
                        subscriber,
                        [str(c) for c in form.getlist("category")],
                        categories,
                        client=client,
                    )
                    saved = "categories"
                elif action == "tracking" and form.get("tracking") in ("on", "off"):
                    on = form.get("tracking") == "on"
                    set_tracking(session, subscriber, on, client=client)
                    saved = "tracking-on" if on else "tracking-off"
                else:
                    raise ValueError("unknown action")
            except ValueError as exc:
                session.rollback()
                reason = "choose a number of weeks" if "invalid literal" in str(exc) else str(exc)
                return preferences_view(
                    request, state, token, subscriber, categories, error=f"Not saved: {reason}.", status=422
                )
        return RedirectResponse(f"/preferences/{token}?saved={saved}", status_code=303)

    return await run_in_threadpool(store)


@router.get("/preferences/{token}/export")
def preferences_export(request: Request, state: State, token: str) -> Response:
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = reader(session, claims)
        if subscriber is None:
            return gone(request, state)
        data = export_data(session, subscriber)
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-newsletter-data.json"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/preferences/{token}/erase", response_class=HTMLResponse)
def preferences_erase(
    request: Request,
    state: State,
    token: str,
    confirm_erase: Annotated[str, Form(alias="confirm", max_length=10)] = "",
) -> Response:
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = reader(session, claims)
        if subscriber is None:
            return gone(request, state)
        if confirm_erase != "yes":
            return preferences_view(
                request,
                state,
                token,
                subscriber,
                known_categories(session),
                status=422,
                error="Tick the box to confirm that you want your address erased.",
            )
        erase(session, subscriber, key=state.settings.signing_key())
    return message(
        request,
        state,
        "Your address is erased",
        "We deleted your address and your history. You will not hear from us again.",
    )


# --- a fresh link to the preferences ---------------------------------------------------------------


@router.get("/manage", response_class=HTMLResponse)
def manage_page(request: Request, state: State) -> Response:
    return message(
        request,
        state,
        "Manage your subscription",
        "Enter your address and we will email you a link to your preferences.",
        manage_form=True,
    )


@router.post("/manage", response_class=HTMLResponse)
async def manage_submit(
    request: Request,
    state: State,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=1000)] = "",
    website: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    if not state.csrf.valid(request.cookies.get(state.csrf.cookie), csrf):
        return message(
            request,
            state,
            "This form had expired",
            "Please enter your address again.",
            status=403,
            manage_form=True,
        )
    retry = state.client_limiter.hit(client_address(request))
    if retry:
        return too_many(request, state, retry)
    if not website:
        try:
            address = normalise_email(email)
        except HeaderValueError as exc:
            return message(request, state, "Please check the address", str(exc), status=422, manage_form=True)
        with session_scope(state.engine) as session:
            subscriber = find_by_email(session, address)
            subscriber_id = (
                subscriber.id if subscriber and subscriber.status == SubscriberStatus.ACTIVE else None
            )
        if subscriber_id is not None:
            background.add_task(send_notice, state, NoticeKind.MANAGE_LINK, subscriber_id, address)
    return RedirectResponse("/check-your-inbox", status_code=303)


# --- votes and comparison pages ---------------------------------------------------------------------


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
    try:
        claims = verify(request, state, token, READER_PURPOSE)
    except LinkRefused as refusal:
        return refused_link(request, state, refusal, READER_PURPOSE)
    with session_scope(state.engine) as session:
        if reader(session, claims) is None:
            return gone(request, state)
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


@router.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}
