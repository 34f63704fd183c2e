"""What the readers' app and its routers share: the app's state and its dependency (`State`), the
page environment, the error answer and the trailing-slash redirect (the console uses the environment
and the redirect too). The routers import this module, never `app`: `app` imports the routers, so
anything they need from it would close an import circle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy.engine import Engine
from starlette.routing import Match, Router
from starlette.types import Receive, Scope, Send

from newsletter.config import Settings
from newsletter.notices import Notices
from newsletter.providers import Provider
from newsletter.render import templates_dir
from newsletter.tokens import Signer
from newsletter.tracking.recorder import HitRecorder, LinkResolver
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
    links: LinkResolver  # tracked tokens to the links of their issue
    hits: HitRecorder  # the hits on them, written in batches
    client_hash: Callable[[str | None], str | None]


def web(request: Request) -> WebState:
    """The app's state, for routes (`state: State`)."""
    return request.app.state.web


State = Annotated[WebState, Depends(web)]


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


def relative_slash_redirects(router: Router) -> None:
    """`/issues/` answers a redirect to `/issues` (and the other way round) when only the other form
    is a route; else 404. The redirect is a path on this site, never an address built from the
    client's Host header, and it can never start with `//` or `/\\` (another site, to a browser)."""
    not_found = router.default
    router.redirect_slashes = False  # Starlette's own builds the address from the Host header

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path != "/":
            other = path.rstrip("/") if path.endswith("/") else path + "/"
            probe = dict(scope, path=other)
            if other and any(route.matches(probe)[0] is not Match.NONE for route in router.routes):
                location = "/" + quote(other.lstrip("/\\"), safe="/")
                if scope.get("query_string"):
                    location += "?" + quote(scope["query_string"], safe="&=+%/:;,@!$'()*~")
                await RedirectResponse(location, status_code=307)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = default
