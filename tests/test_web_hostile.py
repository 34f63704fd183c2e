"""The class test: a real `newsletter serve` answers every hostile request with a 4xx (or a 2xx/3xx),
never a 5xx, and logs no traceback. The battery is generated from the app's own OpenAPI schema (see
tests/hostile.py), so a new route or parameter is attacked without anyone adding a case."""

from __future__ import annotations

import base64
import re
import time
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from sqlmodel import Session, select

from newsletter.curation import Week
from newsletter.db import make_engine
from newsletter.models import Subscriber
from newsletter.tokens import Signer
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.hostile import Context, battery, send
from tests.served import launched
from tests.web_server import Server, server_env

SIGNER = Signer(TEST_KEY.encode())
HOOK_AUTH = "Basic " + base64.b64encode(b"hook:hook-secret").decode()
LOG_PROBLEMS = ("Traceback", "Exception in ASGI application", "unexpected error", "the store refused")


def reader_id(server: Server, address: str) -> int:
    engine = make_engine(database_url(server.directory))
    try:
        with Session(engine) as session:
            return session.exec(select(Subscriber.id).where(Subscriber.email == address)).one()
    finally:
        engine.dispose()


def test_no_request_from_the_schema_battery_gets_a_5xx_or_logs_a_traceback(tmp_path):
    server = Server(
        url="",
        directory=tmp_path,
        env=server_env(tmp_path, postmark_webhook_user="hook", postmark_webhook_password="hook-secret"),
    )
    assert server.cli("init", "--sample").returncode == 0
    assert server.cli("subscribers", "add", "reader@example.com").returncode == 0
    subscriber = reader_id(server, "reader@example.com")
    expires = int(time.time()) + 3600
    reader_token = SIGNER.sign("reader", subscriber, expires)
    week = Week.containing(datetime.now(UTC), UTC).label.lower()

    with launched(server, "serve") as process:
        schema = httpx.get(f"{process.url}/api/openapi.json").json()
        signup_page = httpx.get(f"{process.url}/")
        csrf_cookie = signup_page.cookies["nl_csrf"]
        csrf_token = re.search(r'name="csrf" value="([^"]+)"', signup_page.text)[1]
        context = Context(
            path_values={
                "token": reader_token,
                "/confirm/{token} token": SIGNER.sign("confirm", subscriber, expires),
                "comparison_slug": "cursor-vs-windsurf",
                "tool_slug": "windsurf",
                "verdict": "ship",
                "/compare/{slug} slug": "cursor-vs-windsurf",
                "/issues/{slug} slug": week,
                "provider": "postmark",
            },
            form_values={
                "email": "battery%40example.com",
                "website": "",
                "csrf": csrf_token,
                "confirm": "no",
                "action": "pause",
                "weeks": "1",
                "category": "Developer%20Tools",
                "List-Unsubscribe": "One-Click",
            },
            json_values={"email": "battery@example.com", "website": ""},
            cookies=f"nl_csrf={csrf_cookie}",
        )
        host, port = urlsplit(process.url).hostname, urlsplit(process.url).port
        attempts = list(battery(schema, context))
        statuses: Counter[int | None] = Counter()
        failures = []
        started = time.monotonic()
        for attempt in attempts:
            if attempt.target.startswith("/webhooks/"):
                attempt.headers = [*attempt.headers, ("Authorization", HOOK_AUTH)]
            answer = send(host, port, attempt)
            statuses[answer.status] += 1
            over_limit = "over the limit" in attempt.label
            if answer.status is None and not over_limit:
                failures.append(f"{attempt.label}: {answer.error}")
            elif answer.status is not None and answer.status >= 500:
                failures.append(f"{attempt.label}: {answer.status} {answer.body[:200]!r}")
            elif (
                answer.status and 400 <= answer.status < 500 and attempt.method != "HEAD" and not answer.body
            ):
                failures.append(f"{attempt.label}: {answer.status} without a reason")
            elif b"Traceback" in answer.body:
                failures.append(f"{attempt.label}: a traceback in the answer")
        elapsed = time.monotonic() - started
        assert httpx.get(f"{process.url}/healthz").status_code == 200, "the server survived the battery"
    log = process.log()

    print(f"{len(attempts)} requests in {elapsed:.1f} s; statuses {dict(sorted(statuses.items(), key=str))}")
    assert not failures, f"{len(failures)} of {len(attempts)} failed:\n" + "\n".join(failures[:40])
    problems = [line for line in log.splitlines() if any(p in line for p in LOG_PROBLEMS)]
    assert not problems, "the server logged:\n" + "\n".join(problems[:20]) + "\n\n" + log[-5000:]
    assert reader_token not in log and reader_token.rsplit(".", 1)[1] not in log, "a token in the log"
    # The battery reached the guards it is about, not just the 404 page.
    assert len(attempts) > 2000
    for status in (200, 303, 307, 400, 403, 404, 405, 410, 413, 414, 415, 422):
        assert statuses[status], f"no answer was {status}: {dict(statuses)}"
