"""What the console's app and its routers share: its state, the editor at the console, the page
answer (nonce, CSP, CSRF pair) and the refusal answer. The routers import this module, never `app`
(which imports them)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException

from newsletter.config import Settings
from newsletter.console.access import Credentials, Editor, Sessions
from newsletter.console.runner import SendRunner
from newsletter.console.sources import Sources
from newsletter.providers import Provider
from newsletter.web.security import CSRF_MAX_AGE, CsrfGuard, SlidingWindowLimiter

POLL_MS = 1000
TITLES = {
    400: "Bad request",
    401: "Log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Not now",
    413: "Too large",
    415: "Unsupported",
    422: "Please check",
    429: "Too many",
}


@dataclass
class ConsoleState:
    """Built once per app (`create_console`)."""

    settings: Settings
    engine: Engine | None  # None: no store yet, the packaged sample only
    sources: Sources
    pages: Environment
    csrf: CsrfGuard
    credentials: Credentials
    sessions: Sessions
    login_limiter: SlidingWindowLimiter
    test_limiter: SlidingWindowLimiter
    sends: SendRunner
    mail_provider: Callable[[], Provider]

    @property
    def secure_cookies(self) -> bool:
        """With a login the console is served over TLS (a proxy): its cookies say so."""
        return self.credentials.required

    def store(self) -> Engine:
        """The store, or a 409 page saying there is none yet."""
        if self.engine is None:
            raise HTTPException(409, "There is no store yet: run `newsletter init` first.")
        return self.engine


def console_state(request: Request) -> ConsoleState:
    return request.app.state.console


Console = Annotated[ConsoleState, Depends(console_state)]


def editor_of(request: Request) -> Editor:
    """The editor the guard let in (every route but the login page has one)."""
    editor = getattr(request.state, "editor", None)
    if editor is None:
        raise HTTPException(401, "Please log in.")
    return editor


EditorAt = Annotated[Editor, Depends(editor_of)]


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def page_headers(nonce: str) -> dict[str, str]:
    """The console's pages: scripts only by nonce, styles inline, forms and fetches to itself."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "connect-src 'self'; frame-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "same-origin",  # nothing of the console leaves it; its own forms name their origin
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    """A console page, with a fresh script nonce and the console's CSRF pair."""
    state: ConsoleState = request.app.state.console
    nonce = secrets.token_urlsafe(12)
    cookie = state.csrf.cookie_of(request.cookies)
    body = state.pages.get_template(template).render(
        settings=state.settings,
        nonce=nonce,
        csrf=state.csrf.token_for(cookie),
        poll_ms=POLL_MS,
        editor=getattr(request.state, "editor", None),
        login_required=state.credentials.required,
        has_store=state.engine is not None,
        path=request.url.path,
        **context,
    )
    response = HTMLResponse(body, status_code=status, headers=page_headers(nonce))
    response.set_cookie(
        state.csrf.cookie,
        cookie,
        max_age=CSRF_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=state.secure_cookies,
    )
    return response


def refusal(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """A 4xx with its reason: JSON for scripts, else a console page."""
    if wants_json(request):
        return JSONResponse({"error": TITLES.get(status, "Error"), "detail": detail}, status, headers)
    response = render(
        request, "web/console/message.html.j2", status, heading=TITLES.get(status, "Error"), detail=detail
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def back_to(path: str, **query: str) -> RedirectResponse:
    """303 to a console path (always a path on this site) with a notice code in its query."""
    if not path.startswith("/") or path[1:2] in ("/", "\\"):
        path = "/"
    if query:
        path += "?" + "&".join(f"{name}={quote(value)}" for name, value in query.items())
    return RedirectResponse(path, status_code=303)
