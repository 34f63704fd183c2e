"""The web app's guards: body size, CSRF for the signup form, rate limits, response headers."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "nl_csrf"
CSRF_MAX_AGE = 6 * 3600
READERS_CSRF_LABEL = b"newsletter/csrf/v1"  # the readers' app's, unchanged: its open pages keep working
_COOKIE_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")  # secrets.token_urlsafe(24)
_TOKEN_SHAPE = re.compile(r"[0-9]{1,12}\.[0-9a-f]{32}")

SECURITY_HEADERS = [
    # No scripts at all; inline styles only; forms post to this site alone; never framed.
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    # Links carry tokens: never leak them to another site through the Referer header.
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class BodyTooLarge(HTTPException):
    """A request body went over its limit while it was being read. An HTTPException, so that a route
    (or FastAPI's own form parsing) reading the body hands it to the app's error pages as a clean 413
    instead of failing with an unexpected error."""

    def __init__(self, limit: int):
        super().__init__(413, f"Request body too large (at most {limit} bytes).", {"Connection": "close"})


class BodyLimitMiddleware:
    """Refuse request bodies over `limit` bytes with 413, whether announced or streamed. Paths under
    a prefix in `larger` get that limit instead (providers post batches of events).

    An announced length over the limit is answered before the app runs. A streamed body that goes over
    makes the reader of the body (the app or an inner middleware) get `BodyTooLarge`: the app's
    handlers answer it, or, if it reaches this middleware, the 413 is sent here. Either way nothing is
    logged as an exception, and the connection is closed (the rest of the body is never read).
    """

    def __init__(self, app: ASGIApp, limit: int, larger: dict[str, int] | None = None):
        self.app, self.default, self.larger = app, limit, larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next(
            (size for prefix, size in self.larger.items() if scope["path"].startswith(prefix)), self.default
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _plain(send, 413, f"Request body too large (at most {limit} bytes).")
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except BodyTooLarge as exc:
            if started:  # an app that answers while still reading: nothing sane left to send
                raise
            await _plain(send, 413, exc.detail)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [
                    h for h in SECURITY_HEADERS if h[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers + SECURITY_HEADERS})
    await send({"type": "http.response.body", "body": body})


class CsrfGuard:
    """Double-submit CSRF: a random cookie, and a form field that is an HMAC of it with an expiry.

    The field cannot be made without the key, and the cookie (SameSite=Lax) is not sent with another
    site's POST, so a forged cross-site form fails. Sites allowed to embed the form are let in by their
    Origin header instead (see `origin_allowed`).

    Each app has its own guard: its own `label` (so its own derived key) and its own `cookie` name.
    Cookies are not scoped by port, so the readers' app and the studio on one machine see each other's
    cookies; with one key and one name, a pair from one would pass in the other.
    """

    def __init__(self, key: bytes, *, label: bytes = READERS_CSRF_LABEL, cookie: str = CSRF_COOKIE):
        self._key = hashlib.sha256(label + b"\x00" + key).digest()
        self.cookie = cookie

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(24)

    def cookie_of(self, cookies: Mapping[str, str]) -> str:
        """The client's cookie if it has the shape this guard makes, else a new one: a client's cookie
        is echoed back in Set-Cookie, so nothing else of theirs is."""
        cookie = cookies.get(self.cookie)
        return cookie if cookie and _COOKIE_SHAPE.fullmatch(cookie) else self.new_cookie()

    def token_for(self, cookie: str, now: float | None = None) -> str:
        expires = int((now or time.time()) + CSRF_MAX_AGE)
        return f"{expires}.{self._mac(cookie, expires)}"

    def valid(self, cookie: str | None, token: str | None, now: float | None = None) -> bool:
        if (
            not cookie
            or not _COOKIE_SHAPE.fullmatch(cookie)
            or not token
            or not _TOKEN_SHAPE.fullmatch(token)
        ):
            return False
        expires_text, mac = token.split(".", 1)
        if int(expires_text) < (now or time.time()):
            return False
        return hmac.compare_digest(mac, self._mac(cookie, int(expires_text)))

    def _mac(self, cookie: str, expires: int) -> str:
        return hmac.new(self._key, f"{cookie}|{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def origin_allowed(origin: str | None, own: str, embed: frozenset[str]) -> bool:
    """A POST whose Origin is this site or an allowed embedding site."""
    return bool(origin) and origin != "null" and (origin == own or origin in embed)


class SlidingWindowLimiter:
    """At most `count` hits per key in any `window` seconds, in this process's memory.

    Bounded: the least recently seen keys are dropped beyond `max_keys`, so a flood of addresses
    cannot grow it without limit.
    """

    def __init__(self, count: int, window: int, max_keys: int = 100_000):
        self.count, self.window, self.max_keys = count, window, max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str, now: float | None = None) -> int | None:
        """Whether `key` is over its limit now (the seconds until it is not), recording nothing."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = [at for at in self._hits.get(key, ()) if at > now - self.window]
            if len(hits) >= self.count:
                return max(1, int(hits[0] + self.window - now) + 1)
            return None

    def hit(self, key: str, now: float | None = None) -> int | None:
        """Record a hit; None if allowed, else the seconds until the next one would be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            self._hits[key] = hits
            if len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            if len(hits) >= self.count:
                return max(1, int(hits[0] + self.window - now) + 1)
            hits.append(now)
            return None
