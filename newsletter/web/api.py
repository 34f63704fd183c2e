"""The JSON side of the signup: the same action as the form, for apps and scripts.

A JSON body cannot be sent cross-site by a plain form, and a browser asks first (CORS preflight), so
the content type itself is the CSRF guard here; allowed embedding origins get CORS headers.
"""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from newsletter.web.common import State, error_response
from newsletter.web.signup import signup

router = APIRouter(prefix="/api")


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=1000)
    website: str = Field("", max_length=1000, description="Honeypot: leave empty.")


@router.post(
    "/subscribe",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SignupRequest.model_json_schema()}},
        }
    },
)
async def subscribe_json(request: Request, state: State, background: BackgroundTasks) -> Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return error_response(request, 415, 'send the address as JSON: {"email": "you@example.com"}')
    try:
        body = SignupRequest.model_validate_json(await request.body())
    except ValueError as exc:
        reason = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        return error_response(request, 422, f"the body is not a signup request: {reason}")
    refusal = await signup(request, state, background, body.email, body.website, source="api")
    if refusal is not None:
        return refusal
    return JSONResponse(
        {
            "status": "check-your-inbox",
            "detail": "If the address can receive email, a confirmation is on its way.",
        },
        status_code=202,
    )
