"""`POST /webhooks/{provider}`: provider events, verified, normalised, stored once, acted on.

Unsigned or badly signed requests get 401 and change nothing; a provider whose secret is not
configured gets 401 too, saying which setting is missing. A body that is not the provider's JSON
shape gets 400. Inside a verified body, an event that cannot be read is counted as unprocessable and
the others are stored, answered 200 so the provider stops retrying (the rule: `events.base`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from newsletter.db import session_scope
from newsletter.events.base import PROBLEMS_KEPT, NormalisedEvent, PayloadError, SignatureError
from newsletter.events.intake import IntakeReport, store_events
from newsletter.events.registry import WEBHOOKS
from newsletter.web.common import State, error_response

log = logging.getLogger("newsletter.web")
router = APIRouter(prefix="/webhooks")


@router.post("/{provider}")
async def webhook(request: Request, state: State, provider: str) -> Response:
    receiver = WEBHOOKS.get(provider)
    if receiver is None:
        names = ", ".join(WEBHOOKS)
        return error_response(request, 404, f"no webhook for {provider[:40]!r}; use one of {names}")
    body = await request.body()
    try:  # ECDSA checks and 5 MB of JSON are work for a thread, not for the event loop
        received = await run_in_threadpool(receiver.receive, state.settings, request.headers, body)
    except SignatureError as exc:
        return error_response(request, 401, f"{provider} webhook refused: {exc}")
    except PayloadError as exc:
        return error_response(request, 400, f"{provider} webhook payload: {exc}")
    report = await run_in_threadpool(_store, state.engine, received.events)
    unprocessable = received.unprocessable + report.refused.unprocessable
    problems = (received.problems + report.refused.problems)[:PROBLEMS_KEPT]
    if unprocessable:
        total = len(received.events) + received.unprocessable
        log.warning(
            "%s webhook: %d of %d events unprocessable: %s",
            provider,
            unprocessable,
            total,
            "; ".join(problems),
        )
    return JSONResponse(
        {
            "stored": report.stored,
            "duplicates": report.duplicates,
            "suppressed": report.suppressed,
            "unprocessable": unprocessable,
            "problems": problems,
        }
    )


def _store(engine: Engine, events: list[NormalisedEvent]) -> IntakeReport:
    with session_scope(engine) as session:
        return store_events(session, events)
