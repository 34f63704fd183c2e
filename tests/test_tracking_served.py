"""Tracked links against a real `newsletter serve`: scanners are machines, people are human, bad
tokens get a 400 and never a redirect, a reader's choice and erasure hold, and the report adds up."""

from __future__ import annotations

import email
import json
import re
import time
from datetime import timedelta
from email import policy
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from newsletter.db import make_engine
from newsletter.models import Delivery, IssueLink, LinkHit, Subscriber, SubscriberEvent
from newsletter.tokens import Signer
from newsletter.tracking.links import LinkSigner, parse
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import running_server

SITE = "https://verdicts.example.com"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
READERS = ("head", "decoy", "burst", "agent", "early", "person", "optout", "eraser", "leaver", "voter")


def address(name: str) -> str:
    return f"{name}@example.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tracking")
    with running_server(directory) as server:
        for args in (("subscribers", "add", *map(address, READERS)), ("issue", "compose"), ("issue", "send")):
            result = server.cli(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        engine = make_engine(database_url(directory))
        with Session(engine) as session:  # everyone read it an hour after it arrived, but `early`
            ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
            late = [ids[address(name)] for name in READERS if name != "early"]
            session.execute(
                update(Delivery).where(Delivery.subscriber_id.in_(late)).values(sent_at=func.now())
            )
            session.commit()
            for row in session.scalars(select(Delivery).where(Delivery.subscriber_id.in_(late))):
                row.sent_at = row.sent_at - timedelta(hours=1)
                session.add(row)
            session.commit()
        mails = {}
        for path in server.outbox.glob("*/*.eml"):
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            mails[message["To"]] = message
        with httpx.Client(base_url=server.url, timeout=10, headers={"user-agent": BROWSER}) as client:
            yield server, engine, client, mails, ids
        engine.dispose()


def links_of(message) -> dict[str, list[str]]:
    """The tracked paths of a message by kind (from the HTML: the decoy is only there)."""
    html = message.get_body(("html",)).get_content()
    found: dict[str, list[str]] = {}
    for path in dict.fromkeys(re.findall(rf'href="{re.escape(SITE)}(/r/[^"]+)"', html)):
        found.setdefault(path, [])
    return found


def kinds(engine, message) -> dict[str, list[str]]:
    by_code = {}
    with Session(engine) as session:
        for link in session.scalars(select(IssueLink)):
            by_code[link.code] = link.kind
    grouped: dict[str, list[str]] = {}
    for path in links_of(message):
        grouped.setdefault(by_code[parse(path[3:]).code], []).append(path)
    return grouped


def token_of(message) -> str:
    return re.search(r"/unsubscribe/([^\s\"<>]+)", message.get_body(("plain",)).get_content())[1]


def hits(engine, subscriber_id: int, at_least: int = 1, timeout: float = 10) -> list[tuple]:
    """The reader's stored hits (method, machine, reason), once at least `at_least` are written."""
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            rows = session.execute(
                select(LinkHit.method, LinkHit.machine, LinkHit.reason)
                .where(LinkHit.subscriber_id == subscriber_id)
                .order_by(LinkHit.id)
            ).all()
        if len(rows) >= at_least or time.monotonic() > deadline:
            return [tuple(row) for row in rows]
        time.sleep(0.1)


def test_a_person_reading_and_clicking_two_comparisons_is_human(served):
    _, engine, client, mails, ids = served
    comparisons = kinds(engine, mails[address("person")])["comparison"]
    first = client.get(comparisons[0])
    assert first.status_code == 303 and first.headers["cache-control"] == "no-store" and not first.content
    assert urlsplit(first.headers["location"]).path.startswith("/compare/")
    assert "utm_campaign=" in first.headers["location"]
    time.sleep(2.5)  # reading: longer than the burst rule's two seconds
    assert client.get(comparisons[1]).status_code == 303
    assert hits(engine, ids[address("person")], 2) == [("GET", False, ""), ("GET", False, "")]


def test_scanner_patterns_are_machines_each_with_its_reason(served):
    _, engine, client, mails, ids = served
    link = {
        name: kinds(engine, mails[address(name)]) for name in ("head", "decoy", "burst", "agent", "early")
    }
    assert client.head(link["head"]["comparison"][0]).status_code == 303
    assert client.options(link["head"]["web"][0]).status_code == 204
    assert client.get(link["decoy"]["comparison"][0]).status_code == 303
    assert client.get(link["decoy"]["decoy"][0]).status_code == 303  # the hidden link: only machines
    for path in (*link["burst"]["comparison"], link["burst"]["web"][0]):
        assert client.get(path).status_code == 303
    assert (
        client.get(link["agent"]["site"][0], headers={"user-agent": "python-requests/2.32"}).status_code
        == 303
    )
    assert client.get(link["early"]["comparison"][0]).status_code == 303  # seconds after delivery

    assert hits(engine, ids[address("head")], 2) == [
        ("HEAD", True, "method:HEAD"),
        ("OPTIONS", True, "method:OPTIONS"),
    ]
    assert hits(engine, ids[address("decoy")], 2) == [("GET", True, "decoy-burst"), ("GET", True, "decoy")]
    assert {row[2] for row in hits(engine, ids[address("burst")], 4)} == {"burst"}
    assert hits(engine, ids[address("agent")]) == [("GET", True, "agent:library")]
    assert hits(engine, ids[address("early")]) == [("GET", True, "early")]


def test_tampered_foreign_and_unknown_tokens_get_a_400_page_never_a_redirect(served):
    _, engine, client, mails, ids = served
    path = kinds(engine, mails[address("person")])["comparison"][0]
    token = path[3:]
    parsed = parse(token)
    foreign_reader = Signer(b"another-newsletter-key-0123456789-abcdef").sign("reader", 1, 2_000_000_000)
    unknown_code = LinkSigner(TEST_KEY.encode()).link_part(parsed.issue_id, "zzzz", 2_000_000_000)
    reader_claims = Signer(TEST_KEY.encode()).verify(parsed.reader_token, "reader")
    other_issue = LinkSigner(TEST_KEY.encode()).link_part(
        parsed.issue_id + 1, parsed.code, reader_claims.expires_at
    )
    confirm = Signer(TEST_KEY.encode()).sign("confirm", reader_claims.subject, reader_claims.expires_at)
    signer = Signer(TEST_KEY.encode())
    link_part = f"{parsed.issue_id}.{parsed.code}.{parsed.mac}"
    refused = {
        "mac flipped": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "link mac flipped": token.replace(parsed.mac, parsed.mac[::-1], 1),
        "foreign reader token": f"{parsed.issue_id}.{parsed.code}.{parsed.mac}.{foreign_reader}",
        "another issue": f"{other_issue}.{parsed.reader_token}",
        "a reader token of another issue": f"{link_part}."
        + signer.sign("reader", reader_claims.subject, reader_claims.expires_at + 86_400),
        "a link the issue never had": f"{unknown_code}.{signer.sign('reader', 1, 2_000_000_000)}",
        "a confirmation token": f"{parsed.issue_id}.{parsed.code}.{parsed.mac}.{confirm}",
        "a host": "evil.example.org",
        "garbage": "x" * 200,
    }
    before = hits(engine, reader_claims.subject, 0)
    for name, bad in refused.items():
        for method in ("GET", "HEAD"):
            answer = client.request(method, f"/r/{bad}")
            assert answer.status_code == 400, (name, method, answer.status_code)
            assert "location" not in answer.headers, name
        assert client.get(f"/o/{bad}").status_code == 400
    assert client.get(f"/o/{token}").status_code == 400, "a click link is no pixel"
    for url in (
        "https%3A%2F%2Fevil.example.org",
        "%2F%2Fevil.example.org",
        "https:%2F%2Fevil.example.org%2F",
    ):
        answer = client.get(f"/r/{url}")
        assert 400 <= answer.status_code < 500 and "location" not in answer.headers, url
    assert "not one of ours" in client.get(f"/r/{refused['garbage']}").text
    assert hits(engine, reader_claims.subject, 0) == before


def test_a_reader_who_turns_tracking_off_is_redirected_but_not_stored(served):
    _, engine, client, mails, ids = served
    message = mails[address("optout")]
    token = token_of(message)
    page = client.get(f"/preferences/{token}")
    assert "Turn click tracking off" in page.text
    saved = client.post(f"/preferences/{token}", data={"action": "tracking", "tracking": "off"})
    assert saved.status_code == 303 and "saved=tracking-off" in saved.headers["location"]
    assert "Turn click tracking on" in client.get(f"/preferences/{token}").text
    comparison = kinds(engine, message)["comparison"][0]
    assert client.get(comparison).status_code == 303  # the link still works
    # a later hit of somebody else is written after it: by then theirs would have been too
    other = kinds(engine, mails[address("person")])["site"][0]
    before = len(hits(engine, ids[address("person")], 0))
    client.get(other)
    assert len(hits(engine, ids[address("person")], before + 1)) == before + 1
    assert hits(engine, ids[address("optout")], 0) == []


def test_download_my_data_has_the_clicks_and_erase_me_deletes_them(served):
    _, engine, client, mails, ids = served
    message = mails[address("eraser")]
    token = token_of(message)
    web = kinds(engine, message)["web"][0]
    assert client.get(web).status_code == 303
    assert len(hits(engine, ids[address("eraser")])) == 1
    exported = json.loads(client.get(f"/preferences/{token}/export").text)
    assert [click["kind"] for click in exported["clicks"]] == ["web"]
    assert exported["clicks"][0]["link"].startswith(f"{SITE}/issues/")
    erased = client.post(f"/preferences/{token}/erase", data={"confirm": "yes"})
    assert erased.status_code == 200
    assert hits(engine, ids[address("eraser")], 0) == []
    assert client.get(web).status_code == 303  # a link in an old email still leads to the page...
    time.sleep(0.5)
    assert hits(engine, ids[address("eraser")], 0) == []  # ...and stores nothing


def test_the_report_adds_up_with_the_ledger_hits_votes_and_events(served):
    server, engine, client, mails, ids = served
    leaver = token_of(mails[address("leaver")])
    assert client.post(f"/unsubscribe/{leaver}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    voter = token_of(mails[address("voter")])
    vote = re.search(r"/vote/[^\s]+/ship", mails[address("voter")].get_body(("plain",)).get_content())[0]
    assert vote.startswith(f"/vote/{voter}/")
    assert client.post(vote).status_code == 200
    time.sleep(0.5)  # the last hits of the other tests reach the store

    result = server.cli("issue", "report", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    with Session(engine) as session:
        sent = session.execute(select(func.count()).where(Delivery.status == "sent")).scalar_one()
        stored = session.execute(select(LinkHit.machine, func.count()).group_by(LinkHit.machine)).all()
        human_readers = session.execute(
            select(func.count(func.distinct(LinkHit.subscriber_id))).where(LinkHit.machine.is_(False))
        ).scalar_one()
        left = session.execute(
            select(func.count()).where(
                SubscriberEvent.kind == "unsubscribed", SubscriberEvent.issue_id.is_not(None)
            )
        ).scalar_one()
    by_label = dict(stored)
    assert report["recipients"] == sent == len(READERS) == sum(report["ledger"].values())
    assert report["clicks"]["human"] == by_label.get(False, 0) > 0
    assert report["clicks"]["machine"] == by_label.get(True, 0) > 0
    assert report["clicks"]["human_readers"] == human_readers
    assert sum(link["human"] for link in report["links"]) == report["clicks"]["human"]
    assert sum(link["machine"] for link in report["links"]) == report["clicks"]["machine"]
    assert sum(report["clicks"]["machine_reasons"].values()) == report["clicks"]["machine"]
    comparison_links = [link for link in report["links"] if link["kind"] == "comparison"]
    assert sum(c["human"] for c in report["comparisons"]) == sum(link["human"] for link in comparison_links)
    assert (
        report["unsubscribes"] == {"link": 0, "list_unsubscribe": 1, "provider": 0, "total": 1} and left == 1
    )
    assert [(v["ship"], v["skip"]) for v in report["votes"]] == [(1, 0)]
    assert report["opens"]["tracked"] is False
    csv_out = server.cli("issue", "report", "--csv")
    assert csv_out.returncode == 0 and csv_out.stdout.startswith("section,name,url,value,human,machine")
    stats = json.loads(server.cli("stats", "--weeks", "2", "--json").stdout)["weeks"]
    this_week = stats[-1]
    assert this_week["recipients"] == sent and this_week["human_readers"] == human_readers
    assert this_week["leaves"]["unsubscribed"] == 1


def odd_tokens(token: str) -> dict[str, str]:
    """A real token bent every way a client can bend it: non-ASCII where the MACs are, an emoji, a
    slash, nothing at all, very long, dots only; each as the URL carries it (percent-encoded)."""
    return {
        "e-acute appended": token + "%C3%A9",
        "emoji appended": token + "%F0%9F%98%80",
        "non-ascii mac": token[:-2] + "%C3%A9",
        "fullwidth digit": token.replace("0", "%EF%BC%90", 1) if "0" in token else token + "%EF%BC%90",
        "slash then a host": token + "%2F%2Fevil.example",
        "a real slash": token + "/evil.example",
        "empty": "",
        "dots": "...",
        "long": token + "A" * 1800,
        "null escaped as text": token + "%25%30%30",
    }


def test_every_token_route_answers_odd_tokens_with_a_4xx_never_a_5xx(served):
    """Every route that takes a token, read from the app's own schema, with the odd tokens: never a
    5xx (a non-ASCII MAC once made compare_digest raise). /r/ and /o/ answer each with the 400 page."""
    server, engine, client, mails, ids = served
    tracked = kinds(engine, mails[address("person")])["comparison"][0][3:]
    reader_token = parse(tracked).reader_token
    schema = client.get("/api/openapi.json").json()
    token_paths = [path for path in schema["paths"] if "{token}" in path]
    assert {"/unsubscribe/{token}", "/preferences/{token}", "/confirm/{token}"} <= set(token_paths)
    failures = []
    for path in token_paths:
        for name, odd in odd_tokens(reader_token).items():
            url = path.replace("{token}", odd)
            for part in ("{comparison_slug}", "{tool_slug}"):
                url = url.replace(part, "x")
            url = url.replace("{verdict}", "ship")
            for method in [m.upper() for m in schema["paths"][path] if m in ("get", "post")]:
                status = client.request(method, url).status_code
                if not 400 <= status < 500:
                    failures.append(f"{method} {path} {name}: {status}")
    for prefix in ("/r/", "/o/"):
        for name, odd in odd_tokens(tracked).items():
            for method in ("GET", "HEAD", "OPTIONS"):
                answer = client.request(method, prefix + odd)
                if answer.status_code != 400 or "location" in answer.headers:
                    failures.append(f"{method} {prefix} {name}: {answer.status_code}")
    for bare in ("/r", "/o", "/r/", "/o/", "/r//", "/o/%2F"):
        if (status := client.get(bare).status_code) != 400:
            failures.append(f"GET {bare}: {status}")
    too_long = client.get("/r/" + tracked + "A" * 2100)  # the whole address is over the guard's limit
    assert too_long.status_code == 414 and "location" not in too_long.headers
    assert not failures, "\n".join(failures)
    assert "Traceback" not in (server.directory / "serve.log").read_text(errors="replace")
