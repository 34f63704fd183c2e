"""HEAD answered as GET without a body, on every page that answers GET.

Link checkers, mail scanners and prefetchers send HEAD; FastAPI routes declared for GET refuse it
with 405, which a link checker reports as a broken link. RFC 9110 (9.3.2) says HEAD is GET without
the content: same status, same headers (Content-Length included). A route that declares HEAD itself
(one that must tell a scanner's HEAD from a person's GET) is left to answer it on its own.
"""

from __future__ import annotations

from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp, router: Router):
        self.app, self.router = app, router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or self._declares_head(scope):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)

    def _declares_head(self, scope: Scope) -> bool:
        return any(route.matches(scope)[0] == Match.FULL for route in self.router.routes)
