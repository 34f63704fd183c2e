"""What every reader page does: render a template with the CSRF cookie its form needs, answer with a
message page, verify the signed link a page was opened from, find that link's reader, and send a
notice after the response.

A link that does not verify raises `LinkRefused`, and a reader who is no longer on the list
`ReaderGone`; the app answers both (`answer_refused_link`, `answer_gone`), so a route reads its
claims and its reader in one line each.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from newsletter.models import Subscriber, SubscriberStatus
from newsletter.notices import CONFIRM_PURPOSE, NoticeKind
from newsletter.providers.base import log_send_failure, refused_result
from newsletter.tokens import Claims, TokenError
from newsletter.web.common import WebState, error_response, wants_json
from newsletter.web.security import CSRF_MAX_AGE

log = logging.getLogger("newsletter.web")
TRACKING_NOTES = {
    "off": "We do not track opens or clicks in our emails.",
    "clicks": "We count which links in our emails are clicked (not opens); you can turn that off in "
    "your preferences.",
    "clicks+opens": "We count when our emails are opened and which links are clicked; you can turn "
    "that off in your preferences.",
}
# The fields of the pages' email forms (signup, a fresh link): the address and the honeypot, the
# CSRF token.
FormText = Annotated[str, Form(max_length=1000)]
CsrfField = Annotated[str, Form(max_length=200)]
_REASON = {"expired": "has expired", "invalid": "is not valid", "malformed": "is incomplete"}


def form_body(fields: dict) -> dict:
    """The request body of a route that reads its form itself, as the schema (/api/openapi.json)
    shows it."""
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


class LinkRefused(Exception):
    """A signed link that does not verify: answered by `answer_refused_link`."""

    def __init__(self, status: int, reason: str, purpose: str):
        self.status, self.reason, self.purpose = status, reason, purpose


def verify(state: WebState, token: str, purpose: str) -> Claims:
    """The claims of a link signed for `purpose`, else LinkRefused (410 expired, 400 otherwise)."""
    try:
        return state.signer.verify(token, purpose)
    except TokenError as exc:
        status = 410 if exc.reason == "expired" else 400
        raise LinkRefused(status, exc.reason, purpose) from exc


async def answer_refused_link(request: Request, refusal: LinkRefused) -> Response:
    """The app's answer to LinkRefused: a refused confirmation link says to sign up again, any other
    offers a fresh link to the preferences."""
    state: WebState = request.app.state.web
    if wants_json(request):
        return error_response(request, refusal.status, f"the link {_REASON[refusal.reason]}")
    if refusal.purpose == CONFIRM_PURPOSE:
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


class ReaderGone(Exception):
    """The link's reader is no longer on the list (erased, or never stored): answered by `answer_gone`."""


def reader(session: Session, claims: Claims) -> Subscriber | None:
    """The link's reader, None when they are gone."""
    subscriber = session.get(Subscriber, claims.subject)
    if subscriber is None or subscriber.status == SubscriberStatus.ERASED:
        return None
    return subscriber


def link_reader(session: Session, claims: Claims) -> Subscriber:
    """The link's reader, else ReaderGone."""
    subscriber = reader(session, claims)
    if subscriber is None:
        raise ReaderGone
    return subscriber


async def answer_gone(request: Request, _exc: ReaderGone) -> Response:
    """The app's answer to ReaderGone."""
    return gone(request, request.app.state.web)


def gone(request: Request, state: WebState) -> Response:
    return message(
        request,
        state,
        "This address is no longer on the list",
        "There is nothing to change. You can sign up again at any time.",
        status=410,
        page_links=[{"url": "/", "label": "Sign up"}],
    )


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
    what = f"the {kind} email to subscriber {subscriber_id}"
    try:
        results = await state.provider.send_batch(
            [state.notices.message(kind, subscriber_id=subscriber_id, email=email)]
        )
        if not results[0].accepted:
            raise refused_result(results[0])
    except Exception as exc:  # the page was answered already: log it (a traceback only for a bug)
        log_send_failure(log, what, exc)
