"""`POST /webhooks/{provider}`: provider events, verified, normalised, stored once, acted on.

Unsigned or badly signed requests get 401 and change nothing; a provider whose secret is not
configured gets 401 too, saying which setting is missing.
"""

from __future__ import annotations

import json
from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.events import normalise
from newsletter.events.intake import store_events
from newsletter.events.signatures import (
    SignatureError,
    verify_basic_auth,
    verify_mailgun,
    verify_sendgrid,
    verify_svix,
)
from newsletter.web.app import error_response
from newsletter.web.pages import State

router = APIRouter(prefix="/webhooks")


def parse(provider: str, settings: Settings, headers, body: bytes) -> list[normalise.NormalisedEvent]:
    """Verify the request as `provider` signs it, then normalise; SignatureError or PayloadError."""
    if provider == "postmark":
        if not (settings.postmark_webhook_user and settings.postmark_webhook_password):
            raise SignatureError(
                "set NEWSLETTER_POSTMARK_WEBHOOK_USER and _PASSWORD to receive Postmark webhooks"
            )
        verify_basic_auth(headers, settings.postmark_webhook_user, settings.postmark_webhook_password)
        return normalise.postmark(body)
    if provider == "resend":
        if not settings.resend_webhook_secret:
            raise SignatureError("set RESEND_WEBHOOK_SECRET to receive Resend webhooks")
        event_id = verify_svix(headers, body, settings.resend_webhook_secret)
        return normalise.resend(body, event_id)
    if provider == "sendgrid":
        if not settings.sendgrid_webhook_public_key:
            raise SignatureError("set SENDGRID_WEBHOOK_PUBLIC_KEY to receive SendGrid webhooks")
        verify_sendgrid(headers, body, settings.sendgrid_webhook_public_key)
        return normalise.sendgrid(body)
    if provider == "mailgun":
        if not settings.mailgun_webhook_signing_key:
            raise SignatureError("set MAILGUN_WEBHOOK_SIGNING_KEY to receive Mailgun webhooks")
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise normalise.PayloadError("not JSON") from exc
        if not isinstance(payload, dict):
            raise normalise.PayloadError("a Mailgun webhook is a JSON object")
        token = verify_mailgun(payload.get("signature") or {}, settings.mailgun_webhook_signing_key)
        events = normalise.mailgun(payload)
        # Mailgun's event id is the key; the signed token also makes a replayed request a duplicate.
        return [e if e.event_key not in ("", "None") else _with_key(e, token) for e in events]
    raise LookupError(provider)


def _with_key(event: normalise.NormalisedEvent, key: str) -> normalise.NormalisedEvent:
    return replace(event, event_key=key)


@router.post("/{provider}")
async def webhook(request: Request, state: State, provider: str) -> Response:
    body = await request.body()
    try:
        events = parse(provider, state.settings, request.headers, body)
    except LookupError:
        return error_response(
            request, 404, f"no webhook for {provider!r}; use postmark, resend, sendgrid or mailgun"
        )
    except SignatureError as exc:
        return error_response(request, 401, f"{provider} webhook refused: {exc}")
    except normalise.PayloadError as exc:
        return error_response(request, 400, f"{provider} webhook payload: {exc}")
    with session_scope(state.engine) as session:
        report = store_events(session, events)
    return JSONResponse(
        {"stored": report.stored, "duplicates": report.duplicates, "suppressed": report.suppressed}
    )
