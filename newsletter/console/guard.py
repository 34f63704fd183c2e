"""The console's door: who is let in (`ConsoleGuard`, a middleware) and which posts are believed
(`checked_post`, a dependency of every route).

Every request gets its editor first: the local editor when no credentials are configured (the
console is then bound to loopback: `access.check_binding`), else the editor of a valid session
cookie or Bearer token. Without one, a page redirects to the login form and anything else is 401.

Every POST must come from the console's own pages: a browser's `Sec-Fetch-Site` must say
same-origin and its `Origin` must be the console's own host (403 otherwise), and the form must carry
the console's CSRF token, an HMAC of its SameSite=Strict cookie (403 otherwise). A request that
authenticates with a Bearer token carries no cookie a forger could ride, and needs no token.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.console.access import SESSION_COOKIE, Editor
from newsletter.console.state import ConsoleState

PUBLIC_PATHS = frozenset({"/login", "/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = "This request came from another site; the console takes changes from its own pages only."
EXPIRED = "The form had expired or did not come from the console; reload the page and send it again."


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def cross_site(headers: Headers) -> bool:
    """A browser says so (Sec-Fetch-Site, which every current browser sends), or, from one that does
    not, its Origin names another host than the one it talks to."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False  # not a browser's form (a script with the CSRF token, or a Bearer token)
    return origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class ConsoleGuard:
    """See the module's docstring."""

    def __init__(self, app: ASGIApp, state: ConsoleState):
        self.app, self.state = app, state

    def editor(self, headers: Headers) -> Editor | None:
        credentials = self.state.credentials
        if not credentials.required:
            return Editor(self.state.settings.editor_name, "local")
        return self.state.sessions.read(_cookie(headers, SESSION_COOKIE)) or credentials.bearer(
            headers.get("authorization")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method, path = scope["method"], scope["path"]
        if method not in SAFE_METHODS and cross_site(headers):
            await JSONResponse({"error": "Not allowed", "detail": CROSS_SITE}, 403)(scope, receive, send)
            return
        editor = self.editor(headers)
        if editor is None and path not in PUBLIC_PATHS:
            if method in SAFE_METHODS and "text/html" in headers.get("accept", "text/html"):
                target = path + (
                    "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
                )
                response = RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
            else:
                response = JSONResponse({"error": "Log in", "detail": "Please log in first."}, 401)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["editor"] = editor
        await self.app(scope, receive, send)


async def checked_post(request: Request) -> None:
    """Every POST carries the console's CSRF token (form field `csrf`, or header X-CSRF-Token)."""
    if request.method in SAFE_METHODS:
        return
    state: ConsoleState = request.app.state.console
    editor = getattr(request.state, "editor", None)
    if editor is not None and editor.via == "token" and request.headers.get("authorization"):
        return
    token = request.headers.get("x-csrf-token")
    if token is None:
        form = await request.form()
        token = form.get("csrf")
    if not isinstance(token, str) or not state.csrf.valid(request.cookies.get(state.csrf.cookie), token):
        raise HTTPException(403, EXPIRED)
