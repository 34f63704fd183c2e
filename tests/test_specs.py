"""The requests each adapter makes, checked against the providers' own published API specs.

The specs are copied into tests/specs from ../shared/specs (Resend, SendGrid, Mailgun: OpenAPI 3.1).
Postmark publishes none: its batch request is checked against a JSON Schema written from its
documentation. Requests are captured as they leave the adapter's HTTP client on the way to the
emulator, so what is checked is exactly what a provider would receive.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hashlib
import json
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from werkzeug.datastructures import Headers, ImmutableMultiDict

from newsletter.config import Settings
from newsletter.personalise import IssueMailer
from newsletter.providers import make_provider
from newsletter.render import Renderer
from tests.emulator_server import running_emulator
from tests.test_render import issue_of

SPECS = Path(__file__).parent / "specs"
OPENAPI = {"resend": "resend.yaml", "sendgrid": "sendgrid-mail-v3.yaml", "mailgun": "mailgun.yaml"}
# SendGrid's spec serves from https://api.sendgrid.com, Resend's from https://api.resend.com and Mailgun's
# from https://api.mailgun.net: requests to the emulator are checked as if sent there.
SERVERS = {
    "resend": "https://api.resend.com",
    "sendgrid": "https://api.sendgrid.com",
    "mailgun": "https://api.mailgun.net",
    "postmark": "https://api.postmarkapp.com",
}

POSTMARK_BATCH = {
    "type": "array",
    "minItems": 1,
    "maxItems": 500,
    "items": {
        "type": "object",
        "required": ["From", "To", "Subject", "HtmlBody", "TextBody", "MessageStream"],
        "additionalProperties": False,
        "properties": {
            "From": {"type": "string", "minLength": 3},
            "To": {"type": "string", "minLength": 3},
            "Subject": {"type": "string", "minLength": 1, "maxLength": 2000},
            "HtmlBody": {"type": "string"},
            "TextBody": {"type": "string"},
            "Tag": {"type": "string", "maxLength": 1000},
            "Headers": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["Name", "Value"],
                    "additionalProperties": False,
                    "properties": {"Name": {"type": "string"}, "Value": {"type": "string"}},
                },
            },
            "Metadata": {
                "type": "object",
                "maxProperties": 10,
                "propertyNames": {"maxLength": 20},
                "additionalProperties": {"type": "string", "maxLength": 80},
            },
            "MessageStream": {"type": "string"},
            "TrackOpens": {"type": "boolean"},
            "TrackLinks": {"enum": ["None", "HtmlAndText", "HtmlOnly", "TextOnly"]},
        },
    },
}


class CapturedRequest:
    """An httpx request in the shape openapi-core reads."""

    def __init__(self, request: httpx.Request, server: str):
        self.host_url = server
        self.path = urlsplit(str(request.url)).path
        self.method = request.method.lower()
        self.body = request.content
        self.content_type = request.headers.get("content-type", "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


def captured_requests(
    provider: str, emulator, samples, count: int = 3, batch: str | None = None
) -> list[httpx.Request]:
    """The requests an adapter makes to send `count` messages (and reconcile them, where it can)."""
    batch = batch or secrets.token_hex(12)
    settings = Settings(_env_file=None, secret_key="x" * 40, **emulator.provider_settings(provider))
    rendered = Renderer().render_issue(issue_of(samples[:2], settings))
    mailer = IssueMailer(rendered, settings, tag="2026-w48", expires_at=2_000_000_000)
    messages = [
        mailer.message(delivery_id=n, subscriber_id=n, email=f"reader{n}@example.com", batch=batch)
        for n in range(count)
    ]
    seen: list[httpx.Request] = []

    async def go():
        adapter = make_provider(settings)

        async def capture(request: httpx.Request) -> None:
            await request.aread()
            seen.append(request)

        adapter.client.event_hooks["request"] = [capture]
        try:
            await adapter.send_batch(messages)
            await adapter.reconcile(messages) if provider in ("postmark", "mailgun") else None
        finally:
            await adapter.aclose()

    asyncio.run(go())
    return seen


@pytest.fixture(scope="module")
def emulator():
    with running_emulator() as running:
        yield running


@pytest.mark.parametrize("provider", ["resend", "sendgrid", "mailgun"])
def test_requests_validate_against_the_providers_openapi_spec(provider, emulator, samples):
    spec = OpenAPI.from_file_path(str(SPECS / OPENAPI[provider]))
    requests = captured_requests(provider, emulator, samples)
    assert requests, "the adapter made no request"
    sending = [r for r in requests if r.method == "POST"]
    assert sending
    for request in requests:
        spec.validate_request(CapturedRequest(request, SERVERS[provider]))


def _without_sender(provider: str, request: httpx.Request) -> httpx.Request:
    """The same request without its From: every spec requires one."""
    if provider == "mailgun":
        fields = [
            (part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
            for part in _multipart(request).iter_parts()
        ]
        files = [(name, (None, value)) for name, value in fields if name != "from"]
        rebuilt = httpx.Request("POST", request.url, files=files)
        rebuilt.read()
        return rebuilt
    body = json.loads(request.content)
    if provider == "resend":
        del body[0]["from"]
    else:
        del body["from"]
    return httpx.Request("POST", request.url, json=body)


def _multipart(request: httpx.Request):
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    return email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)


@pytest.mark.parametrize("provider", ["resend", "sendgrid", "mailgun"])
def test_a_request_that_breaks_the_spec_is_caught(provider, emulator, samples):
    """The check can fail: the same request without its sender is refused by the spec."""
    spec = OpenAPI.from_file_path(str(SPECS / OPENAPI[provider]))
    (request,) = [r for r in captured_requests(provider, emulator, samples) if r.method == "POST"]
    spec.validate_request(CapturedRequest(request, SERVERS[provider]))
    with pytest.raises(OpenAPIError):
        spec.validate_request(CapturedRequest(_without_sender(provider, request), SERVERS[provider]))


def test_postmark_batch_matches_its_documented_shape(emulator, samples):
    requests = captured_requests("postmark", emulator, samples, batch="c" * 24)
    batch = next(r for r in requests if r.method == "POST")
    assert urlsplit(str(batch.url)).path == "/email/batch"
    assert batch.headers["x-postmark-server-token"] and batch.headers["content-type"] == "application/json"
    assert int(batch.headers["content-length"]) == len(batch.content)
    body = json.loads(batch.content)
    jsonschema.validate(body, POSTMARK_BATCH)
    assert body[0]["MessageStream"] == "broadcast"
    assert {h["Name"] for h in body[0]["Headers"]} >= {"List-Unsubscribe", "List-Unsubscribe-Post"}
    search = next(r for r in requests if r.method == "GET")
    assert urlsplit(str(search.url)).path == "/messages/outbound"
    assert search.url.params["count"] == "500" and search.url.params["metadata_batch"] == "c" * 24


def test_resend_batch_is_at_most_100_and_carries_the_idempotency_key(emulator, samples):
    key = secrets.token_hex(12)
    requests = [
        r for r in captured_requests("resend", emulator, samples, count=150, batch=key) if r.method == "POST"
    ]
    assert [len(json.loads(r.content)) for r in requests] == [100, 50]
    assert [r.headers["idempotency-key"] for r in requests] == [key, f"{key}-100"]


def test_substituting_providers_send_the_body_once_per_request(emulator, samples):
    for provider in ("sendgrid", "mailgun"):
        (request,) = [
            r for r in captured_requests(provider, emulator, samples, count=40) if r.method == "POST"
        ]
        assert request.content.count(b"<!doctype html>") == 1, provider


# sha256 of ../shared/specs as provided (2026-11): the copies here must be those, byte for byte.
SHARED_SPEC_SHA256 = {
    "resend.yaml": "636624a01ce2009c9034fe4bf3cb2f3d30b0f9077784c017022a65a24f1a80dc",
    "sendgrid-mail-v3.yaml": "a61b6991da8bf03c3ffc2ef5e214ac596079f33eb119f5b356a86ae1f5a8bed3",
    "mailgun.yaml": "b58e83444577fddea25fb1c5ff539aacc53c53dfb2d05dd0b35f09d380e7e0e6",
}


def test_the_specs_here_are_the_providers_published_ones_unedited():
    for name, digest in SHARED_SPEC_SHA256.items():
        assert hashlib.sha256((SPECS / name).read_bytes()).hexdigest() == digest, name
