"""Logging in and out, when the console has credentials. Failed logins are rate-limited per client
(NEWSLETTER_CONSOLE_LOGIN_RATE; past it even the right password waits), the form carries the
console's CSRF token like every other form, and a login and a logout are editor events."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from newsletter import editor_log
from newsletter.console.access import SESSION_COOKIE, Editor
from newsletter.console.state import Console, ConsoleState, render
from newsletter.db import session_scope

router = APIRouter()
log = logging.getLogger("newsletter.console")


def safe_next(target: str | None) -> str:
    """Where to go after the login: a path on the console, never another site."""
    if not target or not target.startswith("/") or target[1:2] in ("/", "\\") or "\n" in target:
        return "/"
    return target


def _record(state: ConsoleState, editor: Editor, action: str) -> None:
    if state.engine is not None:
        with session_scope(state.engine) as session:
            editor_log.record(session, editor.name, action, detail=f"via {editor.via}")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, state: Console, next: str | None = None) -> Response:
    if not state.credentials.required:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "web/console/login.html.j2", next_path=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    state: Console,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    if not state.credentials.required:
        return RedirectResponse("/", status_code=303)
    client = request.client.host if request.client else "unknown"
    retry = state.login_limiter.retry_after(client)  # only failed attempts count towards the limit
    if retry:
        response = render(
            request,
            "web/console/login.html.j2",
            429,
            next_path=safe_next(next_path),
            error=f"Too many attempts from here: try again in {retry} seconds.",
        )
        response.headers["Retry-After"] = str(retry)
        return response
    editor = await run_in_threadpool(state.credentials.login, name, password)  # scrypt: off the loop
    if editor is None:
        state.login_limiter.hit(client)
        log.warning("console login refused for a client (wrong name or password)")
        return render(
            request,
            "web/console/login.html.j2",
            401,
            next_path=safe_next(next_path),
            error="That name and password do not match.",
        )
    await run_in_threadpool(_record, state, editor, "login")
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        state.sessions.make(editor),
        max_age=state.sessions.seconds,
        httponly=True,
        secure=True,
        samesite="strict",
        path="/",
    )
    return response


@router.post("/logout")
async def logout(request: Request, state: Console) -> Response:
    editor = getattr(request.state, "editor", None)
    state.sessions.revoke(request.cookies.get(SESSION_COOKIE))
    if editor is not None and editor.via != "local":
        await run_in_threadpool(_record, state, editor, "logout")
    response = RedirectResponse("/login" if state.credentials.required else "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response
