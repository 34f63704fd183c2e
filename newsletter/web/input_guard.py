"""Refuse, at the edge, client text that the store cannot keep or that no route can mean.

One ASGI middleware looks at everything a client sends before any route does: the path, the query,
the header values and the body of a form or of JSON. A NUL, a control character in the address, a
percent escape that is not UTF-8 (`%ff`), a lone surrogate in JSON (`"\\ud800"`), JSON nested
absurdly deep or a multipart body (no route takes files) gets a 4xx with the reason, whichever route
it was meant for, so no route has to remember it, and PostgreSQL (which cannot store NUL) and SQLite
answer alike. What a value means (an address, a slug, a number of weeks) stays each route's to check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_PATH_CHARS = 2048
MAX_QUERY_CHARS = 2048
MAX_JSON_DEPTH = 64
MAX_BUFFERED_BODY = 8 * 1024 * 1024  # a backstop: the app's body limit (outside) is far lower
# No address, query or header of this site means a control character; in form fields and JSON only
# what no database can keep is refused here (NUL; lone surrogates), the rest is each field's to judge.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_HEADER_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # a tab is allowed in a header value
_BODY_METHODS_WITHOUT = frozenset({"GET", "HEAD", "OPTIONS"})

Refuse = Callable[[Request, int, str, dict[str, str] | None], Response]


class Refused(Exception):
    """What the client sent cannot be taken: `status` and a reason the client can act on."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers


def _text(raw: bytes, where: str) -> str:
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, f"{where} holds a percent escape that is not UTF-8 text (such as %ff)") from None


def check_path(scope: Scope) -> None:
    raw = scope.get("raw_path")
    path = scope["path"] if raw is None else _text(raw, "the address")
    if _CONTROL.search(path):
        raise Refused(400, "the address holds a control character (such as NUL, %00, or a line break)")
    if len(path) > MAX_PATH_CHARS:
        raise Refused(
            414, f"the address is {len(path)} characters long; at most {MAX_PATH_CHARS} are allowed"
        )


def _urlencoded_fields(data: bytes, where: str) -> Iterable[str]:
    """Every name and value of `a=1&b=2` as text, each decoded on its own as the form parser does."""
    for pair in data.split(b"&"):
        for part in pair.split(b"=", 1):
            yield _text(part.replace(b"+", b" "), where)


def check_query(query: bytes) -> None:
    if len(query) > MAX_QUERY_CHARS:
        raise Refused(
            414, f"the query is {len(query)} characters long; at most {MAX_QUERY_CHARS} are allowed"
        )
    for text in _urlencoded_fields(query, "the query"):
        if _CONTROL.search(text):
            raise Refused(400, "the query holds a control character (such as NUL, %00, or a line break)")


def check_headers(headers: Iterable[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        if _HEADER_CONTROL.search(value):
            shown = name.decode("latin-1")[:40]
            raise Refused(400, f"the {shown} header holds a control character")


def check_form(body: bytes) -> None:
    for text in _urlencoded_fields(body, "the form"):
        if _UNSTORABLE.search(text):
            raise Refused(400, "a form field holds a NUL character (%00), which cannot be stored")


def check_json(body: bytes) -> None:
    """A body that is JSON (whatever its type says: webhooks read it regardless) must be UTF-8 and
    hold no NUL or lone surrogate in any string; one that is not JSON is left to the route to refuse."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the JSON body is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise Refused(400, f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        return  # not JSON: the route says what it expected
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise Refused(400, f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise Refused(
                    400,
                    "a JSON string holds NUL (\\u0000) or a lone surrogate (\\ud800), which cannot be stored",
                )
        elif isinstance(value, dict):
            stack.extend((item, depth + 1) for pair in value.items() for item in pair)
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


def media_type(headers: Iterable[tuple[bytes, bytes]]) -> str:
    value = next((v for n, v in headers if n == b"content-type"), b"")
    return value.decode("latin-1").split(";", 1)[0].strip().lower()


def check_body(kind: str, body: bytes) -> None:
    if kind == "application/x-www-form-urlencoded":
        check_form(body)
    elif kind == "application/json" or kind.endswith("+json") or body.lstrip()[:1] in (b"{", b"["):
        check_json(body)


class InputGuardMiddleware:
    """Run the checks above on every HTTP request; a refusal is answered by `refuse` (the app's own
    error page or JSON) and the app never sees the request. Routes under `raw_body_prefixes` (the
    provider webhooks) read and bound their own bodies: a signed event with a NUL in a field is stored
    with it replaced and answered 200 (see `events.base`), since a 400 would be retried for days; for
    them only the address, query and headers are checked here. Multipart bodies are refused (415)
    everywhere else."""

    def __init__(self, app: ASGIApp, refuse: Refuse | None = None, raw_body_prefixes: tuple[str, ...] = ()):
        self.app, self.refuse, self.raw_body_prefixes = app, refuse, raw_body_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        try:
            check_path(scope)
            check_query(scope.get("query_string", b""))
            check_headers(headers)
            if scope["path"].startswith(self.raw_body_prefixes):
                await self.app(scope, receive, send)
                return
            kind = media_type(headers)
            if kind.startswith("multipart/"):
                raise Refused(
                    415, "this site takes forms as application/x-www-form-urlencoded and data as JSON"
                )
            if not _has_body(scope):
                await self.app(scope, receive, send)
                return
            body = await _read_body(receive)
            check_body(kind, body)
        except Refused as refusal:
            await self._answer(scope, receive, send, refusal)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, refusal: Refused) -> None:
        if self.refuse is None:
            response = PlainTextResponse(refusal.reason, status_code=refusal.status, headers=refusal.headers)
        else:
            response = self.refuse(Request(scope, receive), refusal.status, refusal.reason, refusal.headers)
        await response(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    if scope["method"] in _BODY_METHODS_WITHOUT:
        return False
    names = {name for name, _ in scope["headers"]}
    return b"content-length" in names or b"transfer-encoding" in names


async def _read_body(receive: Receive) -> bytes:
    """The whole body; the body limit outside this middleware bounds it, and its 413 (an
    HTTPException raised by `receive`) is answered like any other refusal. Without one, this never
    holds more than MAX_BUFFERED_BODY."""
    chunks, size = [], 0
    while True:
        try:
            message = await receive()
        except HTTPException as exc:
            raise Refused(exc.status_code, exc.detail, exc.headers) from None
        if message["type"] != "http.request":
            raise Refused(400, "the client went away before the body arrived")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_BUFFERED_BODY:
            raise Refused(
                413, f"Request body too large (at most {MAX_BUFFERED_BODY} bytes).", {"Connection": "close"}
            )
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, as one message; after that, whatever the client does next (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
