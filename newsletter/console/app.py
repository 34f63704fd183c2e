"""The editors' console (`newsletter preview`, or `newsletter console`): the week's issue and what an
editor does to it, a send's ledger as it moves, what each issue did, the readers and the content,
plus the preview studio's frames, checks and test sends.

Bound to loopback without credentials it needs no login; with credentials every page does (see
`access` and `guard`). It answers only the Host names it is bound to (no DNS rebinding) plus
NEWSLETTER_CONSOLE_HOSTS. Every change it makes goes through the services the CLI uses and is an
editor event.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from newsletter.config import Settings, parse_rate
from newsletter.console import actions, activity, content, issue_pages, live, login, readers, report_pages
from newsletter.console.access import Credentials, Sessions
from newsletter.console.guard import ConsoleGuard, checked_post
from newsletter.console.runner import SendRunner
from newsletter.console.sources import Sources
from newsletter.console.state import ConsoleState, refusal
from newsletter.console.warmer import WARM_EVERY, FigureWarmer
from newsletter.providers import Provider, make_provider
from newsletter.web.common import page_environment, relative_slash_redirects
from newsletter.web.input_guard import InputGuardMiddleware
from newsletter.web.security import BodyLimitMiddleware, CsrfGuard, SlidingWindowLimiter

log = logging.getLogger("newsletter.console")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
CONSOLE_CSRF_LABEL = b"newsletter/studio/csrf/v1"  # the studio's: its open pages keep working
CONSOLE_CSRF_COOKIE = "nl_studio_csrf"
TEST_SENDS = (10, 600)  # test sends per editor in any ten minutes


def create_console(
    settings: Settings,
    engine: Engine | None,
    *,
    templates: Path | None = None,
    provider: Provider | None = None,
    hosts: tuple[str, ...] = LOCAL_HOSTS,
    test_sends: tuple[int, int] = TEST_SENDS,
    warm_every: float = WARM_EVERY,
) -> FastAPI:
    """The console app. `engine` None previews the package's sample only (no store yet); `templates`
    is a directory of email templates to work on instead of the package's own; `provider` sends
    tests (made on the first test otherwise); `hosts` are the Host names it answers; `warm_every`:
    seconds between looks for report figures to count ahead (0: never; console/warmer.py)."""
    key = settings.signing_key()
    credentials = Credentials(settings)
    outbound: list[Provider] = [provider] if provider else []

    def mail_provider() -> Provider:
        if not outbound:  # made on the first test send: a preview needs no provider credentials
            outbound.append(make_provider(settings))
        return outbound[0]

    state = ConsoleState(
        settings=settings,
        engine=engine,
        sources=Sources(settings, engine, templates),
        pages=page_environment(),
        csrf=CsrfGuard(key, label=CONSOLE_CSRF_LABEL, cookie=CONSOLE_CSRF_COOKIE),
        credentials=credentials,
        sessions=Sessions(key, credentials, settings.console_session_hours),
        login_limiter=SlidingWindowLimiter(*parse_rate(settings.console_login_rate), max_keys=10_000),
        test_limiter=SlidingWindowLimiter(*test_sends, max_keys=1000),
        sends=SendRunner(engine, settings),
        mail_provider=mail_provider,
    )

    warmer = FigureWarmer(engine, settings, warm_every)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        warmer.start()
        yield
        warmer.shutdown()
        state.sends.shutdown()
        for each in outbound:
            await each.aclose()

    app = FastAPI(
        title=f"{settings.name} console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        dependencies=[Depends(checked_post)],
    )
    app.state.console = state
    app.state.sources = state.sources  # bench/preview.py drops its cache between runs
    relative_slash_redirects(app.router)
    for module in (login, issue_pages, actions, live, content, report_pages, readers, activity):
        app.include_router(module.router)

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(ConsoleGuard, state=state)
    app.add_middleware(InputGuardMiddleware, refuse=refusal, raw_body_prefixes=(content.UPLOAD_PATH,))
    app.add_middleware(
        BodyLimitMiddleware, limit=settings.max_body_bytes, larger={content.UPLOAD_PATH: content.UPLOAD_LIMIT}
    )
    allowed = sorted({*hosts, *settings.console_host_list})
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed)
    return app


async def _http_error(request: Request, exc: HTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else "Error"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "There is no page at this address."
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed here."
    return refusal(request, exc.status_code, detail, getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = []
    for error in exc.errors():
        place = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
        problems.append(f"{place}: {error.get('msg', 'invalid')}" if place else error.get("msg", "invalid"))
    return refusal(request, 422, "; ".join(problems) or "The request is not valid.")


async def _unstorable(request: Request, exc: Exception) -> Response:
    log.error(
        "the store refused a value on %s %s; answered 400", request.method, request.url.path, exc_info=exc
    )
    return refusal(request, 400, "The request holds text that cannot be stored (such as a NUL character).")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return HTMLResponse(
        "<!doctype html><title>Server error</title><p>Something went wrong in the console; the log says "
        "what.</p>",
        status_code=500,
    )
