"""What the readers' app and its routers share: the app's state, the page environment and the
error answer. The routers import this module, never `app`, so building the app imports them freely."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.notices import Notices
from newsletter.providers import Provider
from newsletter.render import templates_dir
from newsletter.tokens import Signer
from newsletter.views import Masthead
from newsletter.web.security import CsrfGuard, SlidingWindowLimiter

REASONS = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    410: "Gone",
    413: "Too large",
    414: "Address too long",
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


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    machine = request.url.path.startswith(("/api/", "/webhooks/"))
    return machine or ("application/json" in accept and "text/html" not in accept)


def error_response(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """A refusal with its reason: JSON for machines, else the site's message page."""
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
