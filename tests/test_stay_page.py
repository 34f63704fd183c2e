"""The re-engagement question's stay page against a real `newsletter serve`: GET (and HEAD) show one
button and change nothing, the POST keeps the reader and closes their question, a tampered or foreign
token is refused with 400 and an expired one with 410, and a reader who was let go is offered the way
back through confirmation only."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Issue, Subscriber, SubscriberEvent, SunsetAsk
from newsletter.tokens import Signer
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import link_in, running_server

SIGNER = Signer(TEST_KEY.encode())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This week's issue sent to three readers, each with an open "still want it?" question."""
    directory = tmp_path_factory.mktemp("stay")
    with running_server(directory, sunset_issues="2") as running:
        for args in (
            ("subscribers", "add", "kim@example.com", "lou@example.com", "max@example.com"),
            ("issue", "compose"),
            ("issue", "send"),
        ):
            result = running.cli(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        running.engine = make_engine(database_url(directory))
        with Session(running.engine) as session:
            issue = session.exec(select(Issue.id)).one()
            readers = session.exec(select(Subscriber.id)).all()
            for reader in readers:
                session.add(SunsetAsk(subscriber_id=reader, last_issue_id=issue, issues=2, attempts=1))
            session.commit()
        yield running
        running.engine.dispose()


def ids(server) -> dict[str, int]:
    with Session(server.engine) as session:
        return {s.email.split("@")[0]: s.id for s in session.exec(select(Subscriber))}


def token(server, name: str, purpose: str = "stay", seconds: int = 3600) -> str:
    return SIGNER.sign(purpose, ids(server)[name], int(time.time()) + seconds)


def outcome(server, name: str) -> str | None:
    reader = ids(server)[name]
    with Session(server.engine) as session:
        return session.exec(select(SunsetAsk.outcome).where(SunsetAsk.subscriber_id == reader)).one()


def test_the_get_and_head_show_one_button_and_only_the_post_keeps_the_reader(server):
    stay = token(server, "kim")
    page = httpx.get(f"{server.url}/stay/{stay}", timeout=10)
    assert page.status_code == 200 and "kim@example.com" in page.text
    assert f'action="/stay/{stay}"' in page.text and 'method="post"' in page.text
    head = httpx.head(f"{server.url}/stay/{stay}", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == page.headers["content-length"]
    assert outcome(server, "kim") is None, "a GET or HEAD changes nothing"

    kept = httpx.post(f"{server.url}/stay/{stay}", timeout=10)
    assert kept.status_code == 200 and "you&#39;re staying" in kept.text.lower()
    preferences = kept.text.split('href="/preferences/', 1)[1].split('"', 1)[0]
    assert httpx.get(f"{server.url}/preferences/{preferences}", timeout=10).status_code == 200
    assert outcome(server, "kim") == "stayed"
    reader = ids(server)["kim"]
    with Session(server.engine) as session:
        event = session.exec(
            select(SubscriberEvent).where(
                SubscriberEvent.subscriber_id == reader, SubscriberEvent.kind == "stayed"
            )
        ).one()
    assert event.source == "stay page" and event.client_hash
    again = httpx.post(f"{server.url}/stay/{stay}", timeout=10)
    assert again.status_code == 200 and outcome(server, "kim") == "stayed"


def test_a_bad_link_is_refused_and_changes_nothing(server):
    stay = token(server, "lou")
    tampered = stay[:-1] + ("A" if stay[-1] != "A" else "B")
    for path, status in (
        (f"/stay/{tampered}", 400),
        (f"/stay/{token(server, 'lou', 'reader')}", 400),  # a reader link is no stay link
        (f"/stay/{token(server, 'lou', 'confirm')}", 400),
        (f"/preferences/{stay}", 400),  # and a stay link opens nothing else
        (f"/unsubscribe/{stay}", 400),
        (f"/stay/{token(server, 'lou', seconds=-5)}", 410),
        ("/stay/not-a-token", 400),
    ):
        for method in ("GET", "POST"):
            answer = httpx.request(method, server.url + path, timeout=10)
            assert answer.status_code == status, (method, path, answer.status_code)
    assert outcome(server, "lou") is None
    nobody = SIGNER.sign("stay", 999_999, int(time.time()) + 3600)
    assert httpx.post(f"{server.url}/stay/{nobody}", timeout=10).status_code == 410


def test_a_reader_let_go_is_offered_the_way_back_through_confirmation_only(server):
    reader = token(server, "max", "reader")
    assert httpx.post(f"{server.url}/unsubscribe/{reader}", timeout=10).status_code == 200
    stay = token(server, "max")
    page = httpx.get(f"{server.url}/stay/{stay}", timeout=10)
    assert page.status_code == 200 and "You have left the list" in page.text
    answer = httpx.post(f"{server.url}/stay/{stay}", timeout=10)
    assert "You have left the list" in answer.text and outcome(server, "max") is None
    come_back = answer.text.split('action="', 1)[1].split('"', 1)[0]
    assert come_back.endswith("/come-back")
    assert httpx.post(server.url + come_back, timeout=10).status_code == 200
    link_in(server.mail_to("max@example.com", "confirm"), "/confirm/")
    with Session(server.engine) as session:
        status = session.exec(select(Subscriber.status).where(Subscriber.email == "max@example.com")).one()
    assert status == "unsubscribed", "nothing changes until they confirm"
