"""Every GET page answers HEAD as GET without a body (link checkers and scanners send HEAD), and a
reader who already left is told so by their unsubscribe link and offered the way back through
confirmation. Against a real `newsletter serve`."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Subscriber
from newsletter.tokens import Signer
from newsletter.web import create_app
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import link_in, running_server

SIGNER = Signer(TEST_KEY.encode())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("head")) as running:
        added = running.cli("subscribers", "add", "reader@example.com", "leaver@example.com")
        assert added.returncode == 0, added.stderr
        for step in (["issue", "compose"], ["issue", "send"]):
            assert running.cli(*step).returncode == 0
        yield running


def reader_id(server, address: str) -> int:
    engine = make_engine(database_url(server.directory))
    try:
        with Session(engine) as session:
            return session.exec(select(Subscriber.id).where(Subscriber.email == address)).one()
    finally:
        engine.dispose()


def status_of(server, address: str) -> str:
    engine = make_engine(database_url(server.directory))
    try:
        with Session(engine) as session:
            return session.exec(select(Subscriber.status).where(Subscriber.email == address)).one()
    finally:
        engine.dispose()


def get_paths(server, settings) -> list[str]:
    """Every GET route of the app, its parameters filled with values that exist in the store."""
    token = SIGNER.sign("reader", reader_id(server, "reader@example.com"), int(time.time()) + 3600)
    confirm = SIGNER.sign("confirm", reader_id(server, "reader@example.com"), int(time.time()) + 3600)
    sent = server.cli("issue", "show").stdout
    week = re.search(r"Issue (\d{4}-W\d\d)", sent).group(1).lower()
    values = {
        "token": token,
        "slug": "claude-haiku-open-weights-vs-gemini-2-5-flash-lite",
        "comparison_slug": "claude-haiku-open-weights-vs-gemini-2-5-flash-lite",
        "tool_slug": "claude-haiku-open-weights",
        "verdict": "ship",
    }
    paths = []
    for template, methods in create_app(settings).openapi()["paths"].items():
        if "get" not in methods:
            continue
        path = template
        for name in re.findall(r"{(\w+)}", template):
            value = values.get(name)
            if template.startswith("/confirm/"):
                value = confirm
            elif template.startswith("/issues/"):
                value = week
            assert value is not None, f"no sample value for {{{name}}} in {template}: add one to this test"
            path = path.replace(f"{{{name}}}", value)
        paths.append(path)
    return paths


def test_every_get_page_answers_head_as_get_without_a_body(server, settings):
    paths = get_paths(server, settings.model_copy(update={"database_url": database_url(server.directory)}))
    assert len(paths) >= 10
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for path in paths:
            got = http.get(path)
            head = http.head(path)
            assert head.status_code == got.status_code != 405, (path, head.status_code, got.status_code)
            assert head.content == b"", path
            assert head.headers.get("content-type") == got.headers.get("content-type"), path
            if "content-length" in got.headers:
                assert head.headers["content-length"] == got.headers["content-length"], path
        assert http.head("/no-such-page").status_code == 404
        token = SIGNER.sign("reader", reader_id(server, "reader@example.com"), int(time.time()) + 3600)
        assert http.head(f"/unsubscribe/{token}").status_code == 200
    assert status_of(server, "reader@example.com") == "active", "a HEAD changes nothing"


def test_a_reader_who_left_is_told_so_and_comes_back_only_through_confirmation(server):
    token = SIGNER.sign("reader", reader_id(server, "leaver@example.com"), int(time.time()) + 3600)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first = http.get(f"/unsubscribe/{token}")
        assert "Unsubscribe?" in first.text
        assert http.post(f"/unsubscribe/{token}").status_code == 200
        again = http.get(f"/unsubscribe/{token}")
        assert again.status_code == 200
        assert "Unsubscribe?" not in again.text and "You have left the list" in again.text
        assert "leaver@example.com unsubscribed on" in again.text
        assert f'action="/unsubscribe/{token}/come-back"' in again.text

        before = server.mails_to("leaver@example.com", "confirm")
        back = http.post(f"/unsubscribe/{token}/come-back")
        assert back.status_code == 200 and "Check your inbox" in back.text
        assert status_of(server, "leaver@example.com") == "unsubscribed", "nothing changes before confirming"
        message = server.mail_to("leaver@example.com", "confirm", count=before + 1)
        assert http.post(link_in(message, "/confirm/")).status_code == 200
        assert status_of(server, "leaver@example.com") == "active"

        active = http.post(f"/unsubscribe/{token}/come-back")
        assert active.status_code == 200 and "You are subscribed" in active.text
        assert http.post("/unsubscribe/not-a-token/come-back").status_code == 400
