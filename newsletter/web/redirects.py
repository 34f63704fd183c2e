"""`/r/<token>`: a tracked link's one redirect, and `/o/<token>`: the open pixel.

Plain Starlette routes (no dependency injection, no body): scanners hit every link of every message
minutes after a send, and this answers from memory. A token that is not one of ours (malformed,
tampered, another issue's or another site's, a link the issue never had) gets a 400 page and never a
redirect: the destination always comes from the issue's link table, never from the request. The hit
is queued for `HitRecorder` and written after the answer.
"""

from __future__ import annotations

import base64

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.models import utcnow
from newsletter.tracking.agents import agent_class
from newsletter.tracking.links import BadLink, LinkKind
from newsletter.tracking.recorder import PendingHit, Target, wanted_by
from newsletter.web.common import WebState, error_response

METHODS = ["GET", "HEAD", "OPTIONS"]
NO_STORE = {"cache-control": "no-store"}
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1 transparent GIF
PREFETCH_HEADERS = ("purpose", "sec-purpose", "x-purpose", "x-moz")
REFUSED = {
    "malformed": "This link is incomplete: it is not one of ours.",
    "invalid": "This link is not valid: it is not one this newsletter sent.",
    "expired": "This link is not valid: it is not one this newsletter sent.",
    "unknown": "This link leads nowhere: the issue it names has no such link.",
}


def routes() -> list[Route]:
    """Everything under /r and /o is a token, slashes and all (`/r/<token>%2F%2Fevil.example`, `/r/`,
    `/r`): whatever is not one of ours is a 400 page, never a 404 or a redirect. (An address over the
    input guard's 2,048 characters is refused before routing, with 414, like any other.)"""
    return [
        Route("/r/{token:path}", follow, methods=METHODS, include_in_schema=False),
        Route("/o/{token:path}", pixel, methods=METHODS, include_in_schema=False),
        Route("/r", follow, methods=METHODS, include_in_schema=False),
        Route("/o", pixel, methods=METHODS, include_in_schema=False),
    ]


async def follow(request: Request) -> Response:
    target = _resolve(request)
    if isinstance(target, Response):
        return target
    if target.kind == LinkKind.OPEN:
        return error_response(request, 400, REFUSED["unknown"])
    _record(request, target)
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"allow": ", ".join(METHODS), **NO_STORE})
    return Response(status_code=303, headers={"location": target.url, **NO_STORE})


async def pixel(request: Request) -> Response:
    target = _resolve(request)
    if isinstance(target, Response):
        return target
    if target.kind != LinkKind.OPEN:
        return error_response(request, 400, REFUSED["unknown"])
    _record(request, target)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


def _resolve(request: Request) -> Target | Response:
    state: WebState = request.app.state.web
    try:
        return state.links.resolve(request.path_params.get("token", ""))
    except BadLink as exc:
        return error_response(request, 400, REFUSED.get(exc.reason, REFUSED["invalid"]))


def _record(request: Request, target: Target) -> None:
    state: WebState = request.app.state.web
    if not wanted_by(state.settings, target.kind):
        return
    headers = request.headers
    prefetch = any(
        "prefetch" in value or "preview" in value
        for name in PREFETCH_HEADERS
        if (value := headers.get(name, "").lower())
    )
    state.hits.record(
        PendingHit(
            issue_id=target.issue_id,
            subscriber_id=target.subscriber_id,
            link_id=target.link_id,
            kind=target.kind,
            at=utcnow(),
            method=request.method,
            agent=agent_class(headers.get("user-agent")),
            prefetch=prefetch,
            client_hash=state.client_hash(request.client.host if request.client else None),
        )
    )
