"""Signed provider webhook requests for the bounds tests: the test's secrets, realistic payloads with
fresh ids, every field path of them spoilt by each hostile value, and two ways to post them (to the
app in this process over httpx's ASGI transport, or to a real server over HTTP)."""

from __future__ import annotations

import asyncio
import base64
import copy
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from newsletter.events.mailgun import sign_mailgun
from newsletter.events.postmark import basic_auth_header
from newsletter.events.resend import sign_svix
from newsletter.events.sendgrid import new_sendgrid_keys, sign_sendgrid
from tests.test_event_payloads import (
    MAILGUN_FAILED,
    POSTMARK_BOUNCE,
    POSTMARK_DELIVERY,
    RESEND_BOUNCED,
    SENDGRID_EVENTS,
)

POSTMARK_USER, POSTMARK_PASSWORD = "hook", secrets.token_urlsafe(18)
RESEND_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
SENDGRID_PRIVATE, SENDGRID_PUBLIC = new_sendgrid_keys()
MAILGUN_KEY = secrets.token_hex(16)
SECRETS = (POSTMARK_PASSWORD, RESEND_SECRET, MAILGUN_KEY)
BIG = "x" * 5_000_000
CANARY = "canary-" + secrets.token_hex(8)


class Raw:
    """JSON text put into a body as it is: NaN, Infinity, integers past Python's 4,300 digits."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:12]}...)" if len(self.text) > 12 else f"Raw({self.text})"


def dumps(payload: Any) -> bytes:
    raws: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            token = f"@@raw{len(raws)}@@"
            raws[f'"{token}"'] = value.text
            return token
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(payload))
    for token, raw in raws.items():
        text = text.replace(token, raw)
    return text.encode()


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE: list[Any] = [
    Raw("NaN"),  # Infinity and -Infinity take the same path through the parser
    1e300,
    -1e18,
    10**25,
    Raw("9" * 5000),
    2**31,
    2**63,
    1.5,
    "",
    " ",
    "a\x00b",
    "\ud800",
    "x" * 1500,
    "\n\t\r",
    "nan",
    "1e3",
    "٣٤",  # digits of another script: str.isdigit() says yes
    "2019-13-45T99:99:99Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    {"a": {"b": [1, {"c": None}]}, "canary": CANARY},
    [],
    None,
    True,
    nested(300),
]


# --- the providers' requests, correctly signed ----------------------------------------------------


@dataclass
class Request:
    provider: str
    body: bytes
    headers: dict[str, str]
    events: int  # how many events the body holds, for the accounting of a 200


def signed(
    provider: str, payload: Any, *, request_id: str | None = None, stamp: str | None = None
) -> Request:
    """The request `provider` would post with this payload, signed with the test's secrets. `stamp`
    replaces the signature's timestamp (it is then signed as given)."""
    now = stamp if stamp is not None else str(int(time.time()))
    if provider == "mailgun" and stamp is not None:
        payload = copy.deepcopy(payload)
        payload["signature"] = sign_mailgun(MAILGUN_KEY, now, secrets.token_hex(25))
    request = signed_body(provider, dumps(payload), request_id=request_id, stamp=now)
    request.events = len(payload) if provider == "sendgrid" and isinstance(payload, list) else 1
    return request


def signed_body(
    provider: str, body: bytes, *, request_id: str | None = None, stamp: str | None = None
) -> Request:
    """A body as it is, signed as `provider` signs (Mailgun's signature is inside the body)."""
    now = stamp if stamp is not None else str(int(time.time()))
    headers = {"content-type": "application/json"}
    if provider == "postmark":
        headers |= basic_auth_header(POSTMARK_USER, POSTMARK_PASSWORD)
    elif provider == "resend":
        headers |= sign_svix(body, RESEND_SECRET, request_id or f"msg_{secrets.token_hex(8)}", now)
    elif provider == "sendgrid":
        headers |= sign_sendgrid(body, SENDGRID_PRIVATE, now)
    return Request(provider, body, headers, 1)


def mailgun(event_data: Any) -> dict:
    """A Mailgun body: its signature (fresh, over a new token) and the event."""
    return {
        "signature": sign_mailgun(MAILGUN_KEY, int(time.time()), secrets.token_hex(25)),
        "event-data": event_data,
    }


_serial = itertools.count(1)


def unique(provider: str, payload: Any) -> Any:
    """A copy of a realistic payload whose ids are new, so that it is stored rather than a duplicate."""
    payload = copy.deepcopy(payload)
    n = next(_serial)
    if provider == "postmark":
        payload["MessageID"], payload["ID"] = f"pm-{n}", n
    elif provider == "sendgrid":
        for i, item in enumerate(payload):
            item["sg_event_id"] = f"sg-{n}-{i}"
            item["sg_message_id"] = f"sgm{n}x{i}.filter0001.16648.5515E0B88.0"
    elif provider == "mailgun":
        payload = mailgun(payload["event-data"])
        payload["event-data"]["id"] = f"mg-{n}"
    return payload


# --- the realistic payloads and which of their fields an event cannot do without --------------------

POSTMARK_CLICK = {
    "RecordType": "Click",
    "MessageStream": "outbound",
    "ClickLocation": "HTML",
    "Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
    "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X 10"},
    "Platform": "WebMail",
    "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5)",
    "OriginalLink": "https://example.com",
    "Geo": {"CountryISOCode": "RS", "City": "Novi Sad", "Coords": "45.2517,19.8369"},
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Metadata": {"a_key": "a_value", "delivery": "3"},
    "ReceivedAt": "2017-10-25T15:21:11.9065619Z",
    "Tag": "welcome-email",
    "Recipient": "john@example.com",
}


@dataclass
class Sample:
    provider: str
    payload: Any
    essential: set[tuple] = field(default_factory=set)  # paths whose loss may refuse the event
    big: set[tuple] = field(default_factory=set)  # paths also tried with a 5 MB string

    def may_refuse(self, path: tuple) -> bool:
        return any(path[: len(prefix)] == prefix for prefix in self.essential)


SAMPLES = [
    Sample(
        "postmark",
        POSTMARK_BOUNCE,
        {(), ("RecordType",), ("ID",)},
        {("Description",)},
    ),
    Sample(
        "postmark",
        POSTMARK_DELIVERY,
        {(), ("RecordType",), ("MessageID",)},
        {("Details",), ("MessageID",)},
    ),
    Sample(
        "postmark",
        POSTMARK_CLICK,
        {(), ("RecordType",), ("MessageID",), ("ReceivedAt",)},
        {("OriginalLink",)},
    ),
    Sample("resend", RESEND_BOUNCED, {(), ("type",), ("data",)}, {("data", "bounce", "message")}),
    # SendGrid posts batches: each field of an event is spoilt next to a good one, which must be stored
    Sample("sendgrid", SENDGRID_EVENTS[:2], {(), (0,), (1,), (0, "event"), (1, "event")}, {(1, "reason")}),
    Sample("sendgrid", SENDGRID_EVENTS[2:], {(), (0,), (1,), (0, "event"), (1, "event")}),
    Sample(
        "mailgun",
        MAILGUN_FAILED,
        {(), ("signature",), ("event-data",), ("event-data", "event")},
        {("event-data", "delivery-status", "description")},
    ),
]


def paths(value: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(payload: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    payload = copy.deepcopy(payload)
    container = payload
    for step in path[:-1]:
        container = container[step]
    container[path[-1]] = value
    return payload


@dataclass
class Case:
    sample: Sample
    path: tuple
    value: Any

    def request(self) -> Request:
        base = unique(self.sample.provider, self.sample.payload)
        return signed(self.sample.provider, replaced(base, self.path, self.value))

    def __str__(self) -> str:
        return f"{self.sample.provider} {'.'.join(map(str, self.path)) or '<body>'} = {self.value!r:.60}"


def battery() -> list[Case]:
    cases = []
    for sample in SAMPLES:
        base = unique(sample.provider, sample.payload)
        for path in paths(base):
            values = HOSTILE + ([BIG] if path in sample.big else [])
            cases += [Case(sample, path, value) for value in values]
    return cases


# --- where the requests go: the app in this process, or a real server ----------------------------


WEBHOOK_SETTINGS = {
    "postmark_webhook_user": POSTMARK_USER,
    "postmark_webhook_password": POSTMARK_PASSWORD,
    "resend_webhook_secret": RESEND_SECRET,
    "sendgrid_webhook_public_key": SENDGRID_PUBLIC,
    "mailgun_webhook_signing_key": MAILGUN_KEY,
}


@dataclass
class App:
    """Somewhere to post webhooks and the store behind it."""

    send_all: Callable[[list[Request]], list[httpx.Response]]
    database: str

    def send(self, request: Request) -> httpx.Response:
        return self.send_all([request])[0]


def over_asgi(app) -> Callable[[list[Request]], list[httpx.Response]]:
    """Post to the app in this process (httpx's ASGI transport: no socket, no server thread)."""

    def send_all(requests: list[Request]) -> list[httpx.Response]:
        async def run() -> list[httpx.Response]:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is an answer
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                return [
                    await client.post(f"/webhooks/{r.provider}", content=r.body, headers=r.headers)
                    for r in requests
                ]

        return asyncio.run(run())

    return send_all


def over_http(client: httpx.Client) -> Callable[[list[Request]], list[httpx.Response]]:
    def send_all(requests: list[Request]) -> list[httpx.Response]:
        return [client.post(f"/webhooks/{r.provider}", content=r.body, headers=r.headers) for r in requests]

    return send_all
