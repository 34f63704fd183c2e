"""The editors' preview studio (`newsletter preview`): local only, read-only, no reader data.

Pages list the sample, this week's draft and the stored issues; an issue's page shows its headers,
its size against Gmail's clipping, the email in frames at 600 and 375 px and in dark mode, the plain
text, the quality gates' findings and a form to send a test. The page polls a fingerprint and reloads
itself when a template or the content changes.

The preview reader is subscriber 0, who does not exist: no reader's address or token is ever shown.
The app answers only Host headers naming the address it is bound to (no DNS rebinding). The one form
that does something (send a test) needs the studio's own CSRF pair (its own key and cookie, so the
readers' app's pair on the same machine never passes here), is open to loopback clients only (a
Host header proves nothing: any client can send `Host: 127.0.0.1`) and is rate-limited per client.
A login for the studio comes later; until then it is for one machine.
"""

from __future__ import annotations

import html
import ipaddress
import logging
import secrets
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from newsletter.config import Settings
from newsletter.headers import HeaderValueError, normalise_email, parse_from_address
from newsletter.providers import Provider, make_provider
from newsletter.providers.base import log_send_failure
from newsletter.render import GMAIL_CLIP_BYTES
from newsletter.studio.sources import Preview, Sources
from newsletter.web.common import page_environment, relative_slash_redirects
from newsletter.web.input_guard import InputGuardMiddleware
from newsletter.web.security import CSRF_MAX_AGE, BodyLimitMiddleware, CsrfGuard, SlidingWindowLimiter

log = logging.getLogger("newsletter.studio")
POLL_MS = 1000
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
STUDIO_CSRF_LABEL = b"newsletter/studio/csrf/v1"
STUDIO_CSRF_COOKIE = "nl_studio_csrf"
TEST_SENDS = (10, 600)  # test sends from this machine in any ten minutes


def is_loopback(client: str | None) -> bool:
    """Whether a peer address is this machine's own (127.0.0.0/8, ::1, ::ffff:127.x)."""
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def page_headers(nonce: str) -> dict[str, str]:
    """The studio's own pages: one inline script (by nonce) that polls and sizes the frames."""
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "connect-src 'self'; frame-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


# The email in a frame: nothing of it may run or load from elsewhere but its images.
FRAME_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'; "
        "base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def create_studio(
    settings: Settings,
    engine: Engine | None,
    *,
    templates: Path | None = None,
    provider: Provider | None = None,
    hosts: tuple[str, ...] = LOCAL_HOSTS,
    test_sends: tuple[int, int] = TEST_SENDS,
) -> FastAPI:
    """The studio app. `engine` None previews the package's sample only (no store yet); `templates`
    is a directory of email templates to work on instead of the package's own; `test_sends` is
    (count, seconds): how many tests this machine may send in that window."""
    sources = Sources(settings, engine, templates)
    pages = page_environment()
    csrf = CsrfGuard(settings.signing_key(), label=STUDIO_CSRF_LABEL, cookie=STUDIO_CSRF_COOKIE)
    send_limiter = SlidingWindowLimiter(*test_sends, max_keys=1000)
    outbound: list[Provider] = [provider] if provider else []
    domain = parse_from_address(settings.from_address).domain

    def mail_provider() -> Provider:
        if not outbound:  # made on the first test send: a preview needs no provider credentials
            outbound.append(make_provider(settings))
        return outbound[0]

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        for each in outbound:
            await each.aclose()

    app = FastAPI(title=f"{settings.name} preview", docs_url=None, redoc_url=None, openapi_url=None)
    app.router.lifespan_context = lifespan
    app.state.sources = sources
    relative_slash_redirects(app.router)
    app.add_middleware(InputGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        nonce = secrets.token_urlsafe(12)
        cookie = csrf.cookie_of(request.cookies)
        body = pages.get_template(template).render(
            settings=settings, nonce=nonce, csrf=csrf.token_for(cookie), poll_ms=POLL_MS, **context
        )
        response = HTMLResponse(body, status_code=status, headers=page_headers(nonce))
        response.set_cookie(csrf.cookie, cookie, max_age=CSRF_MAX_AGE, httponly=True, samesite="strict")
        return response

    def not_found(request: Request, key: str) -> HTMLResponse:
        return page(
            request,
            "web/studio/missing.html.j2",
            404,
            key=key,
            reason="There is no such issue, and no comparison that week to preview.",
        )

    async def load(key: str) -> Preview | None:
        return await run_in_threadpool(sources.preview, key)

    async def find(request: Request, key: str) -> Preview | Response:
        """The preview behind `key`, or the 404 page that says there is none."""
        try:
            preview = await load(sources.normalise(key))
        except ValueError:
            preview = None
        return preview if preview is not None else not_found(request, key)

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        entries = await run_in_threadpool(sources.entries)
        return page(request, "web/studio/index.html.j2", entries=entries, has_store=engine is not None)

    @app.get("/issues/{key}", response_class=HTMLResponse)
    async def issue_page(request: Request, key: str, sent: str | None = None) -> Response:
        preview = await find(request, key)
        if not isinstance(preview, Preview):
            return preview
        return studio_page(request, preview, notice=f"Test sent to {sent}." if sent else None)

    def studio_page(
        request: Request,
        preview: Preview,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int | None = None,
    ) -> HTMLResponse:
        size = preview.report.html_bytes if preview.report else 0
        return page(
            request,
            "web/studio/issue.html.j2",
            status or (422 if error else 200),
            preview=preview,
            view=preview.view,
            report=preview.report,
            sender=settings.from_address,
            size=size,
            limit=GMAIL_CLIP_BYTES,
            size_percent=min(100, round(100 * size / GMAIL_CLIP_BYTES)),
            notice=notice,
            error=error,
        )

    @app.get("/issues/{key}/email.html", response_class=HTMLResponse)
    async def email_frame(key: str, scheme: str = "light") -> Response:
        try:
            preview = await load(sources.normalise(key))
        except ValueError:
            preview = None
        if preview is None or preview.report is None:
            message = preview.error if preview else "Nothing to preview here."
            body = f"<!doctype html><title>No preview</title><p>{html.escape(message)}</p>"
            return HTMLResponse(body, status_code=404 if preview is None else 200, headers=FRAME_HEADERS)
        body = preview.dark_html() if scheme == "dark" else preview.html
        # Links open outside the studio (the frame is sandboxed and may only open popups).
        body = body.replace("<head>", '<head><base target="_blank">', 1)
        return HTMLResponse(body, headers=FRAME_HEADERS)

    @app.get("/issues/{key}/fingerprint")
    async def fingerprint(key: str) -> Response:
        try:
            value = await run_in_threadpool(sources.fingerprint, sources.normalise(key))
        except ValueError:
            return JSONResponse({"error": "unknown issue"}, status_code=404)
        return JSONResponse({"fingerprint": value}, headers={"Cache-Control": "no-store"})

    @app.post("/issues/{key}/test", response_class=HTMLResponse)
    async def send_test(
        request: Request,
        key: str,
        email: Annotated[str, Form(max_length=1000)] = "",
        token: Annotated[str, Form(alias="csrf", max_length=200)] = "",
    ) -> Response:
        preview = await find(request, key)
        if not isinstance(preview, Preview):
            return preview
        if not csrf.valid(request.cookies.get(csrf.cookie), token):
            return studio_page(request, preview, error="The form had expired; please send it again.")
        client = request.client.host if request.client else None
        if not is_loopback(client):
            return studio_page(
                request,
                preview,
                status=403,
                error="Tests are sent from this machine only: open the studio at http://127.0.0.1 here, "
                "or through an SSH tunnel.",
            )
        if preview.report is None:
            return studio_page(request, preview, error="The issue does not render; fix the template first.")
        try:
            address = normalise_email(email)
        except HeaderValueError as exc:
            return studio_page(request, preview, error=f"Please check the address: {exc}.")
        # Every loopback address is this one machine: 127.0.0.2 (or a forged X-Forwarded-For of one
        # through a local proxy) is not a new client.
        retry = send_limiter.hit("loopback")
        if retry:
            response = studio_page(
                request,
                preview,
                status=429,
                error=f"Too many tests at once: the next one can go in {retry} seconds.",
            )
            response.headers["Retry-After"] = str(retry)
            return response
        message = replace(
            preview.message,
            to=address,
            subject=f"[TEST] {preview.message.subject}",
            message_id=f"<test.{preview.view.slug}.{secrets.token_hex(8)}@{domain}>",
            tag="test",
            metadata={"kind": "test", "issue": preview.view.slug},
        )
        try:
            (result,) = await mail_provider().send_batch([message])
        except Exception as exc:  # a provider's refusal is the editor's to read, not a 500
            log_send_failure(log, f"the test send of {preview.key}", exc)
            return studio_page(request, preview, error=f"The provider refused the test: {exc}")
        if not result.accepted:
            return studio_page(request, preview, error=f"The provider refused the test: {result.error}")
        log.info("test of %s sent to %s through %s", preview.key, address, settings.provider)
        return RedirectResponse(f"/issues/{quote(preview.key)}?sent={quote(address)}", status_code=303)

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
