"""The readers' web app: signup, confirmation, unsubscribe, preferences and votes (FastAPI).

Every refusal is a 4xx with a reason, as an HTML page or as JSON for `/api/` and JSON clients;
an unexpected error is logged and answered with a plain 500 page, never a stack trace.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsletter.config import Settings, parse_rate
from newsletter.db import make_engine
from newsletter.notices import NoticeKind, Notices
from newsletter.providers import Provider, make_provider
from newsletter.render import Renderer, masthead_from, templates_dir
from newsletter.tokens import Signer
from newsletter.views import Masthead
from newsletter.web.security import (
    BodyLimitMiddleware,
    CsrfGuard,
    SecurityHeadersMiddleware,
    SlidingWindowLimiter,
)

log = logging.getLogger("newsletter.web")
WEBHOOK_BODY_LIMIT = 5 * 1024 * 1024

REASONS = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    410: "Gone",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
}


@dataclass
class WebState:
    """What every route needs, built once per app."""

    settings: Settings
    engine: Engine
    masthead: Masthead
    signer: Signer
    csrf: CsrfGuard
    notices: Notices
    provider: Provider
    client_limiter: SlidingWindowLimiter
    per_address: tuple[int, int]
    pages: Environment


def page_environment() -> Environment:
    """Jinja for web pages (the readers' app and the editors' studio): autoescaped, strict."""
    return Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def create_app(settings: Settings, engine: Engine | None = None, provider: Provider | None = None) -> FastAPI:
    key = settings.signing_key()
    renderer = Renderer()
    state = WebState(
        settings=settings,
        engine=engine or make_engine(settings.database_url),
        masthead=masthead_from(settings),
        signer=Signer(key),
        csrf=CsrfGuard(key),
        notices=Notices(settings, renderer),
        provider=provider or make_provider(settings),
        client_limiter=SlidingWindowLimiter(*parse_rate(settings.signup_rate_per_client)),
        per_address=parse_rate(settings.signup_rate_per_address),
        pages=page_environment(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Compile the confirmation email before the first signup, not during it.
        state.notices.rendered(NoticeKind.CONFIRM)
        yield
        await state.provider.aclose()

    app = FastAPI(
        title=settings.name, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json", lifespan=lifespan
    )
    app.state.web = state
    from newsletter.web import api, archive, pages, webhooks  # the routes need this module's names

    app.include_router(pages.router)
    app.include_router(archive.router)
    app.include_router(api.router)
    app.include_router(webhooks.router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
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


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    machine = request.url.path.startswith(("/api/", "/webhooks/"))
    return machine or ("application/json" in accept and "text/html" not in accept)


def error_response(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    title = REASONS.get(status, "Error")
    if wants_json(request):
        return JSONResponse({"error": title, "detail": detail}, status_code=status, headers=headers)
    state: WebState = request.app.state.web
    page = state.pages.get_template("web/message.html.j2").render(
        masthead=state.masthead,
        heading=title,
        paragraphs=[detail],
        action=None,
        manage_form=False,
        csrf="",
        links=[{"url": "/", "label": f"Go to {state.masthead.name}"}],
    )
    return HTMLResponse(page, status_code=status, headers=headers)


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
