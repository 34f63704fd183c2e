"""The web app's guards one by one, in process (the real-process tests are in test_web.py and
test_web_hostile.py): the body limit, the input guard, the CSRF guards of the two apps, the last-line
answer to a value the store refuses, and the log filter that redacts reader tokens."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.exc import DataError
from starlette.applications import Starlette
from starlette.routing import Route

from newsletter.console.app import CONSOLE_CSRF_COOKIE as STUDIO_CSRF_COOKIE
from newsletter.console.app import CONSOLE_CSRF_LABEL as STUDIO_CSRF_LABEL
from newsletter.tokens import Signer
from newsletter.web import create_app
from newsletter.web.input_guard import (
    MAX_JSON_DEPTH,
    Refused,
    check_form,
    check_json,
    check_path,
    check_query,
)
from newsletter.web.log_redaction import RedactTokens, redact
from newsletter.web.security import CSRF_COOKIE, BodyLimitMiddleware, CsrfGuard
from newsletter.web.server import log_config
from tests.conftest import TEST_KEY

TOKEN = Signer(TEST_KEY.encode()).sign("reader", 2, int(time.time()) + 3600)


def run(coroutine):
    return asyncio.run(coroutine)


async def post_chunked(app, path: str, size: int, kind: str = "application/json") -> httpx.Response:
    async def body():
        for _ in range(size // 1000):
            yield b"a" * 1000

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=body(), headers={"content-type": kind})


@pytest.mark.parametrize("reader", ["body", "form", "stream"])
def test_a_streamed_body_over_the_limit_is_a_clean_413_wherever_it_is_read(reader, caplog):
    async def endpoint(request: Request):
        if reader == "body":
            await request.body()
        elif reader == "form":
            await request.form()
        else:
            async for _ in request.stream():
                pass
        return PlainTextResponse("read it all")

    app = BodyLimitMiddleware(Starlette(routes=[Route("/", endpoint, methods=["POST"])]), limit=5000)
    kind = "application/x-www-form-urlencoded" if reader == "form" else "application/octet-stream"
    with caplog.at_level(logging.DEBUG):
        response = run(post_chunked(app, "/", 20_000, kind))  # an app exception would be raised here
        small = run(post_chunked(app, "/", 4000, kind))
    assert response.status_code == 413 and "at most 5000 bytes" in response.text
    assert response.headers["connection"] == "close"
    assert small.status_code == 200 and small.text == "read it all"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_readers_app_answers_a_streamed_body_over_the_limit_with_its_own_413_page(settings):
    app = create_app(settings)
    response = run(post_chunked(app, "/api/subscribe", settings.max_body_bytes * 2))
    assert response.status_code == 413
    assert response.json() == {
        "error": "Too large",
        "detail": "Request body too large (at most 16384 bytes).",
    }


@pytest.mark.parametrize(
    ("raw_path", "reason"),
    [
        (b"/compare/%00", "control character"),
        (b"/compare/a%0Db", "control character"),
        (b"/compare/%7f", "control character"),
        (b"/compare/%ff%fe", "not UTF-8"),
        (b"/compare/%ed%a0%80", "not UTF-8"),  # an encoded surrogate
        (b"/compare/%c3", "not UTF-8"),
        (b"/" + b"a" * 3000, "at most 2048"),
    ],
)
def test_the_address_is_refused_for_control_characters_bad_escapes_and_length(raw_path, reason):
    with pytest.raises(Refused, match=reason):
        check_path({"path": raw_path.decode("latin-1"), "raw_path": raw_path})


@pytest.mark.parametrize("raw_path", [b"/compare/caf%C3%A9", b"/compare/%25", b"/%F0%9F%98%80", b"/a%2Fb"])
def test_ordinary_addresses_pass(raw_path):
    check_path({"path": "", "raw_path": raw_path})


def test_queries_and_forms_are_read_field_by_field_as_the_parsers_do():
    check_query(b"a=caf%C3%A9&b=%E2%82%AC&c=+&d")
    for bad in (b"a=%00", b"a=%0d%0a", b"%00=a", b"a=%C3&b=%A9", b"a=%C3=%A9"):
        with pytest.raises(Refused):
            check_query(bad)
    check_form(b"email=a%40example.com&note=line%0Abreak")  # a line break is a field's to judge
    for bad in (b"email=a%00b", b"a%00=1", b"email=%ff"):
        with pytest.raises(Refused):
            check_form(bad)


def test_json_strings_are_checked_at_any_depth_and_non_json_is_left_to_the_route():
    check_json(b'{"email": "caf\\u00e9@example.com", "list": [1, {"a": "b"}]}')
    check_json(b"{not json")  # the route says what it expected
    for bad, reason in (
        (b'{"a": [{"b": "x\\u0000y"}]}', "NUL"),
        (b'{"a\\u0000": 1}', "NUL"),
        (b'["\\ud800"]', "surrogate"),
        (b'{"email": "\xff"}', "not UTF-8"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
    ):
        with pytest.raises(Refused, match=reason):
            check_json(bad)


def test_each_app_has_its_own_csrf_key_and_cookie():
    readers = CsrfGuard(TEST_KEY.encode())
    studio = CsrfGuard(TEST_KEY.encode(), label=STUDIO_CSRF_LABEL, cookie=STUDIO_CSRF_COOKIE)
    assert (readers.cookie, studio.cookie) == (CSRF_COOKIE, STUDIO_CSRF_COOKIE)
    cookie = readers.new_cookie()
    assert readers.valid(cookie, readers.token_for(cookie))
    assert studio.valid(cookie, studio.token_for(cookie))
    assert not studio.valid(cookie, readers.token_for(cookie)), "the readers' pair passed in the studio"
    assert not readers.valid(cookie, studio.token_for(cookie)), "the studio's pair passed in the readers' app"
    assert not readers.valid("\x00" + cookie[1:], readers.token_for("\x00" + cookie[1:]))
    assert readers.cookie_of({CSRF_COOKIE: "\x00\r\nSet-Cookie: x"}) != "\x00\r\nSet-Cookie: x"
    assert readers.cookie_of({CSRF_COOKIE: cookie}) == cookie


def test_a_value_the_store_refuses_is_a_400_and_logged_as_the_bug_it_is(settings, caplog):
    app: FastAPI = create_app(settings)

    @app.get("/boom")
    def boom():
        raise DataError("SELECT 1", {}, Exception("PostgreSQL text fields cannot contain NUL (0x00) bytes"))

    async def call():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/boom", headers={"accept": "application/json"})

    with caplog.at_level(logging.ERROR, logger="newsletter.web"):
        response = run(call())
    assert response.status_code == 400 and "cannot be stored" in response.json()["detail"]
    assert any(
        "the store refused a value on GET /boom" in r.getMessage() and r.exc_info for r in caplog.records
    )


# --- the log filter -------------------------------------------------------------------------------


def formatted(record: logging.LogRecord, formatter: logging.Formatter | None = None) -> str:
    RedactTokens().filter(record)
    return (formatter or logging.Formatter("%(message)s")).format(record)


def record(msg, *args, exc_info=None, name="newsletter.web", **extra) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)
    made.__dict__.update(extra)
    return made


def test_tokens_are_redacted_in_access_lines_messages_and_tracebacks():
    from uvicorn.logging import AccessFormatter

    access = record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/preferences/{TOKEN}", "1.1", 200)
    line = formatted(access, AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    assert line == '127.0.0.1:5 - "GET /preferences/<token> HTTP/1.1" 200 OK'

    assert formatted(record("unexpected error on %s %s", "GET", f"/vote/{TOKEN}/a/b/ship")) == (
        "unexpected error on GET /vote/<token>/a/b/ship"
    )
    assert formatted(record(f"link /preferences/{TOKEN} and %s", "x")) == "link /preferences/<token> and x"
    assert formatted(record("query %s", f"/x?t={TOKEN.replace('.', '%2E')}&u=1")) == "query /x?t=<token>&u=1"
    assert formatted(record("%(path)s", {"path": f"/r/{TOKEN}"})) == "/r/<token>"
    assert TOKEN not in formatted(record("odd %s", ValueError(TOKEN)))
    try:
        raise RuntimeError(f"failed for /unsubscribe/{TOKEN}")
    except RuntimeError:
        with_trace = formatted(record("boom", exc_info=sys.exc_info()))
    assert "RuntimeError: failed for /unsubscribe/<token>" in with_trace and TOKEN not in with_trace
    assert formatted(record("plain %d of %s", 3, "/issues/2026-w48")) == "plain 3 of /issues/2026-w48"


def test_any_segment_after_a_token_path_is_redacted_whatever_it_holds():
    assert redact("/confirm/garbled-but-long/x") == "/confirm/<token>/x"
    assert redact("/preferences/2.abc.%41%42/export") == "/preferences/<token>/export"
    assert redact("/issues/2026-w48 and /compare/a") == "/issues/2026-w48 and /compare/a"


def test_every_handler_of_serve_and_preview_carries_the_filter():
    config = log_config()
    assert set(config["handlers"]) == {"default", "access", "app"}
    assert all(handler["filters"] == ["redact_tokens"] for handler in config["handlers"].values())
    assert config["root"]["handlers"] == ["app"]
