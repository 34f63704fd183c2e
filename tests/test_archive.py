"""The public archive against a real `newsletter serve`: past issues, their web version, the Atom feed."""

from __future__ import annotations

import email
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, time, timedelta
from email import policy
from urllib.parse import urlsplit

import httpx
import pytest

from newsletter.curation import Week
from tests.browser import artifact
from tests.conftest import seed_dict
from tests.web_server import running_server

ATOM = "{http://www.w3.org/2005/Atom}"
SITE = "https://verdicts.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This week's issue sent to one reader; next week's composed as a draft that nobody may see."""
    with running_server(tmp_path_factory.mktemp("archive")) as running:
        for args in (("subscribers", "add", "ada@example.com"), ("issue", "compose"), ("issue", "send")):
            result = running.cli(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def week() -> Week:
    return Week.containing(datetime.now(UTC), UTC)  # the server runs on the default zone, UTC


@pytest.fixture(scope="module")
def sent_email(server):
    (path,) = server.outbox.glob("*/*.eml")
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def test_the_view_in_browser_link_opens_the_web_version_without_any_personal_link(client, sent_email, week):
    html = sent_email.get_body(("html",)).get_content()
    tracked = re.search(r'href="([^"]+)"[^>]*>View in your browser', html)[1].replace("&amp;", "&")
    assert tracked.startswith(f"{SITE}/r/"), "the email's link goes through the tracked redirect"
    redirect = client.get(urlsplit(tracked).path)
    assert redirect.status_code == 303 and redirect.headers["cache-control"] == "no-store"
    parts = urlsplit(redirect.headers["location"])
    assert f"{parts.scheme}://{parts.netloc}" == SITE and parts.path == f"/issues/{week.label.lower()}"
    assert "utm_source=" in parts.query

    page = client.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200
    assert "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite" in page.text
    assert "Reviewer scorecard" in page.text and "panel ship" in page.text
    token = re.search(r"/unsubscribe/([^\"?\s]+)", html)[1]
    assert token not in page.text
    for personal in ("/unsubscribe/", "/preferences/", "/vote/", "/r/", "/o/", "ada@example.com"):
        assert personal not in page.text
    assert "script" not in page.headers["content-security-policy"]


def test_the_archive_lists_sent_issues_only(server, client, week):
    next_week = Week.containing(datetime.now(UTC) + timedelta(days=7), UTC)
    document = seed_dict() | {
        "slug": "next-week-comparison",
        "published_at": datetime.combine(next_week.monday, time(9), UTC).isoformat(),
    }
    path = server.directory / "next.json"
    path.write_text(json.dumps(document))
    for args in (("import", str(path)), ("issue", "compose", "--week", next_week.label)):
        result = server.cli(*args)
        assert result.returncode == 0, result.stdout + result.stderr

    listing = client.get("/issues")
    assert listing.status_code == 200
    assert re.findall(r'href="/issues/([^"]+)"', listing.text) == [week.label.lower()]
    assert client.get(f"/issues/{next_week.label.lower()}").status_code == 404  # a draft
    assert client.get("/issues/not-a-week").status_code == 404
    assert client.get("/").text.count(f'href="/issues/{week.label.lower()}"') == 1  # the latest issue


def test_the_feed_is_atom_with_an_entry_per_sent_issue(client, week):
    response = client.get("/feed.xml")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = ET.fromstring(response.content)  # noqa: S314  (our own feed, from our own test server)
    assert feed.tag == f"{ATOM}feed"
    assert feed.findtext(f"{ATOM}id") == f"{SITE}/issues"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", feed.findtext(f"{ATOM}updated"))
    assert feed.find(f"{ATOM}link[@rel='self']").get("href") == f"{SITE}/feed.xml"
    (entry,) = feed.findall(f"{ATOM}entry")
    url = f"{SITE}/issues/{week.label.lower()}"
    assert entry.findtext(f"{ATOM}id") == url
    assert entry.find(f"{ATOM}link").get("href") == url
    assert entry.findtext(f"{ATOM}title").startswith("Claude Haiku Open Weights vs Gemini 2.5 Flash Lite")
    assert entry.findtext(f"{ATOM}updated") == feed.findtext(f"{ATOM}updated")
    assert entry.findtext(f"{ATOM}summary").startswith("Panel:")
    content = entry.find(f"{ATOM}content")
    assert content.get("type") == "html"
    assert '<a href="https://verdicts.example.com/compare/claude-haiku' in content.text
    assert "/vote/" not in response.text and "/unsubscribe/" not in response.text


def test_the_web_version_reads_on_a_phone_without_horizontal_scroll(browser, client, week):
    page = browser.new_page(viewport={"width": 375, "height": 800})
    page.goto(f"{client.base_url}/issues/{week.label.lower()}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    tools = page.locator(".tool").all()[:2]
    first, second = tools[0].bounding_box(), tools[1].bounding_box()
    assert second["y"] >= first["y"] + first["height"] - 1, "the two tools stack on a phone"
    page.screenshot(path=artifact("archive-issue-375.png"), full_page=True)
    page.close()
