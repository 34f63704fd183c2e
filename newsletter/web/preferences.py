"""A reader's preferences, from the link in every email: pause, categories, click tracking, their data
as JSON, erasure; and `/manage`, where a reader without a link asks for a fresh one by email."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from newsletter.db import session_scope
from newsletter.headers import HeaderValueError, normalise_email
from newsletter.models import Comparison, Subscriber, SubscriberStatus
from newsletter.notices import READER_PURPOSE, NoticeKind
from newsletter.subscriptions import (
    chosen_categories,
    erase,
    export_data,
    find_by_email,
    pause,
    set_categories,
    set_tracking,
)
from newsletter.web.common import State, WebState
from newsletter.web.reader_pages import (
    CsrfField,
    FormText,
    client_address,
    form_body,
    link_reader,
    message,
    render,
    send_notice,
    too_many,
    verify,
)

router = APIRouter()
SAVED = {
    "pause": "Your pause is saved.",
    "resume": "Welcome back: the next issue will reach you.",
    "categories": "Your categories are saved.",
    "tracking-off": "Click tracking is off: from now on your clicks are not counted.",
    "tracking-on": "Click tracking is on. Thank you: it tells us which verdicts are read.",
}
PREFERENCES_FORM = {
    "action": {"type": "string", "enum": ["pause", "categories", "tracking"]},
    "tracking": {"type": "string", "enum": ["on", "off"]},
    "weeks": {"type": "integer", "minimum": 0, "maximum": 12},
    "category": {"type": "array", "items": {"type": "string"}},
}


def known_categories(session: Session) -> list[str]:
    return sorted(set(session.exec(select(Comparison.category))))


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, state: State, token: str, saved: str | None = None) -> Response:
    claims = verify(state, token, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = link_reader(session, claims)
        categories = known_categories(session)
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
    claims = verify(state, token, READER_PURPOSE)
    form = await request.form()
    action = form.get("action")
    client = client_address(request)

    def store() -> Response:
        with session_scope(state.engine) as session:
            subscriber = link_reader(session, claims)
            categories = known_categories(session)
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
    claims = verify(state, token, READER_PURPOSE)
    with session_scope(state.engine) as session:
        data = export_data(session, link_reader(session, claims))
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
    claims = verify(state, token, READER_PURPOSE)
    with session_scope(state.engine) as session:
        subscriber = link_reader(session, claims)
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
        erase(session, subscriber)
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
    email: FormText = "",
    website: FormText = "",
    csrf: CsrfField = "",
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
