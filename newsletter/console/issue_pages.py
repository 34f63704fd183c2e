"""The week (the home page) and an issue's page: its state and pick with their figures, the
editor's forms, the checks, the ledger of its send, what editors did to it, and the email itself
(frames at 600 and 375 px and in dark mode, the plain text, a test send)."""

from __future__ import annotations

import html
import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter.console.access import is_loopback_host
from newsletter.console.overview import WeekOverview, overview, schedule
from newsletter.console.sources import SAMPLE, Preview
from newsletter.console.state import Console, ConsoleState, EditorAt, render
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.headers import HeaderValueError, normalise_email, parse_from_address
from newsletter.quality import Report
from newsletter.render import GMAIL_CLIP_BYTES
from newsletter.send_progress import Progress, send_progress

router = APIRouter()
log = logging.getLogger("newsletter.console")

NOTICES = {
    "composed": "The draft was composed from the week's pick.",
    "moved": "The pick's order is saved.",
    "dropped": "The comparison was taken out of the issue.",
    "added": "The comparison was added to the issue.",
    "pinned": "Pinned: it is picked first when the draft is composed again.",
    "unpinned": "Unpinned.",
    "edited": "The subject and preheader are saved.",
    "approved": "Approved: the scheduler sends it at its next send run.",
    "unapproved": "Back to draft: no scheduled send will send it until it is approved again.",
    "cancelled": "The issue is cancelled: it will not be sent (any further).",
    "sending": "The send has started; its progress shows below.",
}
FRAME_HEADERS = {  # the email in a frame: nothing of it may run or load from elsewhere but its images
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'; "
        "base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def this_week(state: ConsoleState) -> Week:
    return Week.containing(datetime.now(UTC), state.settings.zone)


def normalise(key: str) -> str:
    """`sample` or a week label (any case: `2026-w48` is 2026-W48); 404 for anything else."""
    try:
        return SAMPLE if key == SAMPLE else Week.parse(key).label
    except ValueError:
        raise HTTPException(404, f"There is no issue {key[:40]!r}; issues are named like 2026-W48.") from None


def issue_key(key: str) -> str:
    """A week label for routes that change or read a stored issue (the sample is not one)."""
    key = normalise(key)
    if key == SAMPLE:
        raise HTTPException(404, "The sample issue is the package's content: it has no state to change.")
    return key


async def preview_of(state: ConsoleState, key: str) -> Preview | None:
    return await run_in_threadpool(state.sources.preview, key)


def _overview(state: ConsoleState, key: str) -> WeekOverview | None:
    if state.engine is None or key == SAMPLE:
        return None
    planned = schedule(state.settings, state.engine)
    with session_scope(state.engine) as session:
        return overview(session, state.settings, Week.parse(key), planned)


def _progress(state: ConsoleState, issue_id: int) -> Progress:
    with session_scope(state.store()) as session:
        return send_progress(session, issue_id)


async def issue_page(
    request: Request,
    state: ConsoleState,
    key: str,
    *,
    home: bool = False,
    notice: str | None = None,
    error: str | None = None,
    findings: Report | None = None,
    status: int | None = None,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    """The page of issue `key` (the home page when `home`), with an outcome to say, if any."""
    preview = await preview_of(state, key)
    week = await run_in_threadpool(_overview, state, key)
    if preview is None and (week is None or (week.issue is None and not week.picks)):
        return render(
            request,
            "web/console/missing.html.j2",
            404 if not home else 200,
            key=key,
            home=home,
            reason="There is no issue that week, and no comparison published in it to pick from.",
        )
    report = preview.report if preview else None
    size = report.html_bytes if report else 0
    run = state.sends.run_of(week.issue.id) if week and week.issue else None
    if run is not None and week.progress is None:  # the console's send opens the issue in a moment
        week.progress = await run_in_threadpool(_progress, state, week.issue.id)
    return render(
        request,
        "web/console/issue.html.j2",
        status or (422 if error else 200),
        key=key,
        home=home,
        week=week,
        preview=preview,
        view=preview.view if preview else None,
        report=report,
        findings=findings,
        run=run,
        sender=state.settings.from_address,
        size=size,
        limit=GMAIL_CLIP_BYTES,
        size_percent=min(100, round(100 * size / GMAIL_CLIP_BYTES)),
        notice=notice,
        error=error,
        typed=typed or {},
    )


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, state: Console, done: str | None = None) -> Response:
    key = this_week(state).label
    return await issue_page(request, state, key, home=True, notice=NOTICES.get(done or ""))


@router.get("/issues", response_class=HTMLResponse)
async def issues(request: Request, state: Console) -> Response:
    entries = await run_in_threadpool(state.sources.entries)
    return render(request, "web/console/issues.html.j2", entries=entries)


@router.get("/issues/{key}", response_class=HTMLResponse)
async def issue(request: Request, state: Console, key: str, done: str | None = None, sent: str | None = None):
    notice = f"Test sent to {sent}." if sent else NOTICES.get(done or "")
    return await issue_page(request, state, normalise(key), notice=notice)


@router.get("/issues/{key}/email.html", response_class=HTMLResponse)
async def email_frame(state: Console, key: str, scheme: str = "light") -> Response:
    try:
        preview = await preview_of(state, normalise(key))
    except HTTPException:
        preview = None
    if preview is None or preview.report is None:
        message = preview.error if preview else "Nothing to preview here."
        body = f"<!doctype html><title>No preview</title><p>{html.escape(message)}</p>"
        return HTMLResponse(body, status_code=404 if preview is None else 200, headers=FRAME_HEADERS)
    body = preview.dark_html() if scheme == "dark" else preview.html
    body = body.replace("<head>", '<head><base target="_blank">', 1)  # links open outside the console
    return HTMLResponse(body, headers=FRAME_HEADERS)


@router.get("/issues/{key}/fingerprint")
async def fingerprint(state: Console, key: str) -> Response:
    value = await run_in_threadpool(state.sources.fingerprint, normalise(key))
    return JSONResponse({"fingerprint": value}, headers={"Cache-Control": "no-store"})


@router.post("/issues/{key}/test", response_class=HTMLResponse)
async def send_test(
    request: Request,
    state: Console,
    editor: EditorAt,
    key: str,
    email: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """A test of the issue to one address, marked [TEST]; its personal links lead nowhere."""
    key = normalise(key)
    preview = await preview_of(state, key)
    if preview is None or preview.report is None:
        reason = preview.error if preview else "There is nothing to send for this issue."
        return await issue_page(request, state, key, error=f"No test was sent: {reason}")
    if editor.via == "local" and not is_loopback_host(request.client.host if request.client else ""):
        return await issue_page(
            request, state, key, status=403, error="Without a login, tests are sent from this machine only."
        )
    try:
        address = normalise_email(email)
    except HeaderValueError as exc:
        return await issue_page(request, state, key, error=f"Please check the address: {exc}.")
    retry = state.test_limiter.hit(editor.name)
    if retry:
        response = await issue_page(
            request,
            state,
            key,
            status=429,
            error=f"Too many tests at once: the next one can go in {retry} seconds.",
        )
        response.headers["Retry-After"] = str(retry)
        return response
    domain = parse_from_address(state.settings.from_address).domain
    message = replace(
        preview.report.message,
        to=address,
        subject=f"[TEST] {preview.report.message.subject}",
        message_id=f"<test.{preview.view.slug}.{secrets.token_hex(8)}@{domain}>",
        tag="test",
        metadata={"kind": "test", "issue": preview.view.slug},
    )
    try:
        (result,) = await state.mail_provider().send_batch([message])
    except Exception as exc:  # a provider's refusal is the editor's to read, not a 500
        log.exception("test send of %s failed", key)
        return await issue_page(request, state, key, error=f"The provider refused the test: {exc}")
    if not result.accepted:
        return await issue_page(request, state, key, error=f"The provider refused the test: {result.error}")
    log.info("test of %s sent by %s through %s", key, editor.name, state.settings.provider)
    return RedirectResponse(f"/issues/{quote(key)}?sent={quote(address)}", status_code=303)
