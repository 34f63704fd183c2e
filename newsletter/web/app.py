"""The readers' web app: signup, confirmation, unsubscribe, preferences and votes (FastAPI).

Every refusal is a 4xx with a reason, as an HTML page or as JSON for `/api/` and JSON clients;
an unexpected error is logged and answered with a plain 500 page, never a stack trace.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter.config import Settings, parse_rate
from newsletter.db import make_engine
from newsletter.letters import Letters
from newsletter.notices import NoticeKind, Notices
from newsletter.providers import Provider, make_provider
from newsletter.render import Renderer, masthead_from
from newsletter.tokens import Signer
from newsletter.tracking.classify import Rules
from newsletter.tracking.recorder import HitRecorder, LinkResolver, client_hasher
from newsletter.web import api, archive, comparisons, leaving, preferences, redirects, signup, stay, webhooks
from newsletter.web.common import (
    REASONS,
    WebState,
    error_response,
    page_environment,
    relative_slash_redirects,
    wants_json,
)
from newsletter.web.head import HeadAsGetMiddleware
from newsletter.web.input_guard import InputGuardMiddleware
from newsletter.web.reader_pages import LinkRefused, ReaderGone, answer_gone, answer_refused_link
from newsletter.web.security import (
    BodyLimitMiddleware,
    CsrfGuard,
    SecurityHeadersMiddleware,
    SlidingWindowLimiter,
)

__all__ = ["REASONS", "WebState", "create_app", "error_response", "page_environment", "wants_json"]

log = logging.getLogger("newsletter.web")
WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024


def create_app(settings: Settings, engine: Engine | None = None, provider: Provider | None = None) -> FastAPI:
    key = settings.signing_key()
    renderer = Renderer()
    engine = engine or make_engine(settings.database_url)
    state = WebState(
        settings=settings,
        engine=engine,
        masthead=masthead_from(settings),
        signer=Signer(key),
        csrf=CsrfGuard(key),
        notices=Notices(settings, renderer),
        provider=provider or make_provider(settings),
        client_limiter=SlidingWindowLimiter(*parse_rate(settings.signup_rate_per_client)),
        per_address=parse_rate(settings.signup_rate_per_address),
        pages=page_environment(),
        links=LinkResolver(engine, key),
        hits=HitRecorder(engine, Rules.from_settings(settings)),
        client_hash=client_hasher(key),
        letters=Letters(settings, renderer),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Compile the confirmation email before the first signup, not during it.
        state.notices.rendered(NoticeKind.CONFIRM)
        state.hits.start()
        try:
            yield
        finally:
            await state.hits.aclose()  # every hit still queued is written before the process ends
            await state.provider.aclose()

    app = FastAPI(
        title=settings.name, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json", lifespan=lifespan
    )
    app.state.web = state
    relative_slash_redirects(app.router)

    app.router.routes[:0] = redirects.routes()  # first: the hottest paths, matched before any other
    for module in (signup, leaving, preferences, comparisons):  # the reader pages
        app.include_router(module.router)
    app.add_api_route("/healthz", health, methods=["GET"])  # what a proxy or a supervisor polls
    app.include_router(stay.router)
    app.include_router(archive.router)
    app.include_router(api.router)
    app.include_router(webhooks.router)
    app.add_exception_handler(LinkRefused, answer_refused_link)  # the reader pages' signed links
    app.add_exception_handler(ReaderGone, answer_gone)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(UnicodeEncodeError, _unstorable)
    app.add_exception_handler(Exception, _unexpected_error)
    # Innermost first: HEAD reaches the GET routes as GET; the input guard sees the request after the
    # body limit, and the CORS headers are on its refusals too.
    app.add_middleware(HeadAsGetMiddleware, router=app.router)
    app.add_middleware(InputGuardMiddleware, refuse=error_response, raw_body_prefixes=("/webhooks/",))
    if settings.embed_origin_set:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=sorted(settings.embed_origin_set),
            allow_methods=["POST"],
            allow_headers=["content-type"],
            max_age=3600,
        )
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        larger={"/webhooks/": max(settings.max_body_bytes, WEBHOOK_BODY_LIMIT)},
    )
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def health() -> dict[str, str]:
    return {"status": "ok"}


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else REASONS.get(exc.status_code, "Error")
    if exc.status_code == 404 and detail == "Not Found":
        detail = "There is no page at this address."
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed here."
    return error_response(request, exc.status_code, detail, getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = []
    for error in exc.errors():
        place = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path"))
        problems.append(f"{place}: {error.get('msg', 'invalid')}" if place else error.get("msg", "invalid"))
    return error_response(request, 422, "; ".join(problems) or "The request is not valid.")


async def _unstorable(request: Request, exc: Exception) -> Response:
    """The last line: the store refused a value (PostgreSQL and NUL, a surrogate, a string too long
    for its column). The input guard should have refused it first, so it is logged as the bug it is,
    but the client, whose text it was, gets a 400 with the reason rather than a 500."""
    log.error(
        "the store refused a value on %s %s; answered 400", request.method, request.url.path, exc_info=exc
    )
    return error_response(
        request, 400, "The request holds text that cannot be stored (such as a NUL character)."
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    if wants_json(request):
        return JSONResponse(
            {"error": "Server error", "detail": "Something went wrong on our side."}, status_code=500
        )
    return HTMLResponse(
        "<!doctype html><title>Server error</title><p>Something went wrong on our side. "
        "Please try again in a minute.</p>",
        status_code=500,
    )
