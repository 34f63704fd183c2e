"""The emulator: one local HTTP server speaking Postmark's, Resend's, SendGrid's and Mailgun's sending
APIs, recording every message it accepts and injecting the faults it is told to.

Control endpoints (no authentication; bind it to 127.0.0.1):
  GET  /_emulator/health                  GET /_emulator/counts (per recipient, and requests per outcome)
  GET  /_emulator/messages?to=&provider=&bodies=1
  POST /_emulator/faults  {"fail_rate": 0.05, "drop_rate": 0, "latency_ms": 0, ...}
  POST /_emulator/reset
  POST /_emulator/webhooks {"url", "provider", "events": [{"kind", "to", "id"?}],
                            "signature": "good" | "bad" | "none"}
  GET  /_emulator/webhook-keys            the secrets the app needs to verify what the emulator posts
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable

from newsletter.emulator import apis, webhooks
from newsletter.emulator.http import DROP, Request, Response, serve
from newsletter.emulator.state import Faults, Store

MAILGUN_MESSAGES = re.compile(r"^/v3/([^/]+)/messages$")
MAILGUN_EVENTS = re.compile(r"^/v3/([^/]+)/events$")
DEFAULT_TOKEN = "emulator-token"  # noqa: S105  (the emulator's own API key, not a secret)


class Emulator:
    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        faults: Faults | None = None,
        store: Store | None = None,
        keys: webhooks.WebhookSecrets | None = None,
        base_url: str = "",
    ):
        self.token = token
        self.faults = faults or Faults()
        self.store = store or Store()
        self.keys = keys or webhooks.WebhookSecrets()
        self.base_url = base_url

    async def handle(self, request: Request) -> Response | object:
        path, method = request.path, request.method
        if path.startswith("/_emulator/"):
            return await self.control(request)
        route = self.route(method, path)
        if route is None:
            self.store.requests["unknown route"] += 1
            return Response.of_json(404, {"message": f"no such endpoint: {method} {path}"})
        provider, auth, action, sending = route
        if self.faults.latency_ms:
            await asyncio.sleep(self.faults.latency_ms / 1000)
        refusal = auth(request, self.token)
        if refusal is not None:
            self.store.requests[f"{provider} {refusal.status}"] += 1
            return refusal
        if sending:
            status = self.faults.roll_failure()
            if status is not None:
                self.store.requests[f"{provider} injected {status}"] += 1
                headers = {"Retry-After": str(self.faults.retry_after)} if status == 429 else {}
                return self.fault_response(provider, status, headers)
        response = action(request)
        self.store.requests[f"{provider} {response.status}"] += 1
        if sending and self.faults.answer_delay_ms:
            await asyncio.sleep(self.faults.answer_delay_ms / 1000)
        if sending and response.status < 300 and self.faults.roll_drop():
            self.store.requests[f"{provider} dropped after accepting"] += 1
            return DROP
        return response

    def route(self, method: str, path: str):
        """(provider, auth check, action, is a sending endpoint) for a request, or None."""
        store, rejected = self.store, self.faults.rejected
        if path in ("/email/batch", "/email") and method == "POST":
            batch = path == "/email/batch"
            return (
                "postmark",
                apis.postmark_auth,
                lambda r: apis.postmark_send(r, store, rejected, batch),
                True,
            )
        if path == "/messages/outbound" and method == "GET":
            return "postmark", apis.postmark_auth, lambda r: apis.postmark_search(r, store), False
        if path in ("/emails/batch", "/emails") and method == "POST":
            batch = path == "/emails/batch"
            return "resend", apis.resend_auth, lambda r: apis.resend_send(r, store, batch), True
        if path == "/v3/mail/send" and method == "POST":
            return "sendgrid", apis.sendgrid_auth, lambda r: apis.sendgrid_send(r, store, rejected), True
        if (match := MAILGUN_MESSAGES.match(path)) and method == "POST":
            return "mailgun", apis.mailgun_auth, lambda r: apis.mailgun_send(r, store, match[1]), True
        if (match := MAILGUN_EVENTS.match(path)) and method == "GET":
            base = self.base_url
            return (
                "mailgun",
                apis.mailgun_auth,
                lambda r: apis.mailgun_events(r, store, match[1], base),
                False,
            )
        return None

    @staticmethod
    def fault_response(provider: str, status: int, headers: dict[str, str]) -> Response:
        if provider == "postmark":
            code = 429 if status == 429 else 500
            return Response.of_json(status, {"ErrorCode": code, "Message": "Injected fault"}, headers)
        if provider == "resend":
            name = "rate_limit_exceeded" if status == 429 else "application_error"
            return Response.of_json(
                status, {"statusCode": status, "name": name, "message": "Injected fault"}, headers
            )
        if provider == "sendgrid":
            return Response.of_json(
                status, {"errors": [{"message": "Injected fault", "field": None}]}, headers
            )
        return Response.of_json(status, {"message": "Injected fault"}, headers)

    async def control(self, request: Request) -> Response:
        name = request.path.removeprefix("/_emulator/")
        if name == "health":
            return Response.of_json(200, {"status": "ok"})
        if name == "counts":
            return Response.of_json(
                200,
                {
                    "total": len(self.store.records),
                    "per_address": dict(self.store.per_address),
                    "requests": dict(self.store.requests),
                },
            )
        if name == "messages":
            to, provider = request.param("to"), request.param("provider")
            bodies = request.param("bodies") == "1"
            found = [
                r.summary(bodies)
                for r in self.store.records
                if (to is None or r.to == to.lower()) and (provider is None or r.provider == provider)
            ]
            return Response.of_json(200, {"messages": found})
        if name == "reset" and request.method == "POST":
            self.store.reset()
            return Response.of_json(200, {"status": "reset"})
        if name == "faults" and request.method == "POST":
            try:
                self.faults.update(**request.json())
            except (ValueError, TypeError, re.error) as exc:
                return Response.of_json(400, {"message": str(exc)})
            return Response.of_json(
                200,
                {"faults": {k: v for k, v in self.faults.__dict__.items() if k not in ("rng", "rejects")}},
            )
        if name == "webhook-keys":
            keys = self.keys
            return Response.of_json(
                200,
                {
                    "postmark_user": keys.postmark_user,
                    "postmark_password": keys.postmark_password,
                    "resend_secret": keys.resend_secret,
                    "sendgrid_public_key": keys.sendgrid_public_key,
                    "mailgun_signing_key": keys.mailgun_signing_key,
                },
            )
        if name == "webhooks" and request.method == "POST":
            return await self.post_webhooks(request.json())
        return Response.of_json(404, {"message": f"no control endpoint {name!r}"})

    async def post_webhooks(self, order: dict) -> Response:
        provider = order.get("provider")
        events = []
        for event in order.get("events", []):
            record = self.store.latest_to(provider, event.get("to", ""))
            if record is None or event.get("kind") not in webhooks.KINDS:
                return Response.of_json(
                    400,
                    {
                        "message": f"no {provider} message to {event.get('to')!r} "
                        f"or unknown kind {event.get('kind')!r}"
                    },
                )
            events.append((event["kind"], record, str(event.get("id") or secrets.randbelow(10**12))))
        requests = webhooks.build(provider, events, self.keys, order.get("signature", "good"))
        return Response.of_json(200, {"answers": await webhooks.post(order["url"], requests)})


async def run(
    host: str,
    port: int,
    emulator: Emulator,
    ready: asyncio.Event | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Listen, then call `on_ready` with the port really bound (`port` 0: any free one) and serve
    until cancelled. OSError when the address cannot be bound (nothing is announced then)."""
    server = await serve(emulator.handle, host, port)
    bound = server.sockets[0].getsockname()[1] if server.sockets else port
    emulator.base_url = emulator.base_url or f"http://{host}:{bound}"
    if on_ready is not None:
        on_ready(bound)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()
