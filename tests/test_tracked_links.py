"""Tracked links in the issue: what is rewritten and what never is, the token and its checks, the link
table the send writes, and the quality gates that look through tracked links."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import hmac
import re
from datetime import UTC, datetime
from email import policy

import pytest
from sqlmodel import select

from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose
from newsletter.models import IssueLink, Subscriber
from newsletter.personalise import IssueMailer
from newsletter.providers import OutboxProvider
from newsletter.quality import check_message, check_view
from newsletter.render import Renderer
from newsletter.samples import dated_into_week, issue_from, sample_comparisons
from newsletter.subscriptions import add_active, set_tracking
from newsletter.tokens import Signer
from newsletter.tracking.links import BadLink, LinkKind, LinkSigner, parse
from newsletter.tracking.recorder import LinkResolver
from tests.conftest import TEST_KEY

SITE = "https://verdicts.example.com"
WEEK = Week(2026, 48)
EXPIRES = 2_000_000_000


@pytest.fixture(scope="module")
def items():
    return sample_comparisons()


def mailer_for(settings, items, *, issue_id: int = 7, count: int = 3) -> IssueMailer:
    rendered = Renderer().render_issue(issue_from(items[:count], settings, week=WEEK))
    return IssueMailer(rendered, settings, tag="2026-w48", expires_at=EXPIRES, issue_id=issue_id)


def tracked_paths(text: str) -> list[str]:
    return re.findall(rf"{re.escape(SITE)}(/[ro]/[^\s\"<>]+)", text)


def test_content_links_are_tracked_and_personal_links_and_list_unsubscribe_never_are(settings, items):
    mailer = mailer_for(settings, items)
    message = mailer.message(delivery_id=1, subscriber_id=42, email="ada@example.com")
    token = mailer.token_for(42)
    html, text = message.html, message.text
    assert message.unsubscribe_url == f"{SITE}/unsubscribe/{token}"
    assert message.list_headers()["List-Unsubscribe"] == f"<{SITE}/unsubscribe/{token}>"
    for personal in ("/unsubscribe/", "/preferences/", "/vote/"):
        assert f"{SITE}{personal}{token}" in html and f"{SITE}{personal}{token}" in text
    hrefs = re.findall(r'href="(https://[^"]+)"', html)
    content = [h for h in hrefs if not any(p in h for p in ("/unsubscribe/", "/preferences/", "/vote/"))]
    assert content and all(h.startswith(f"{SITE}/r/") and h.endswith(f".{token}") for h in content)
    assert "/compare/" not in " ".join(content) and "utm_" not in " ".join(content)
    kinds = {spec.kind for spec in mailer.links}
    assert kinds == {LinkKind.WEB, LinkKind.SITE, LinkKind.COMPARISON, LinkKind.DECOY}
    assert all(path.endswith(token) for path in tracked_paths(text))
    assert "/o/" not in html, "no open pixel unless NEWSLETTER_TRACKING=clicks+opens"


def test_the_decoy_is_html_only_and_hidden_from_people_and_assistive_technology(settings, items):
    mailer = mailer_for(settings, items)
    message = mailer.message(delivery_id=1, subscriber_id=42, email="ada@example.com")
    decoy = next(spec for spec in mailer.links if spec.kind == LinkKind.DECOY)
    (anchor,) = re.findall(
        rf'<div[^>]*><a href="{SITE}/r/7\.{decoy.code}\.[^"]+"[^>]*></a></div>', message.html
    )
    assert 'aria-hidden="true"' in anchor and 'tabindex="-1"' in anchor and "display:none" in anchor
    assert f".{decoy.code}." not in message.text


def test_opens_add_a_pixel_only_when_asked(settings, items):
    opens = settings.model_copy(update={"tracking": "clicks+opens"})
    message = mailer_for(opens, items).message(delivery_id=1, subscriber_id=42, email="ada@example.com")
    (pixel,) = re.findall(r"<img[^>]+/o/[^>]+>", message.html)
    assert 'alt=""' in pixel and 'role="presentation"' in pixel and 'width="1"' in pixel


def test_tracking_off_and_a_reader_who_opted_out_get_plain_links(settings, items):
    off = mailer_for(settings.model_copy(update={"tracking": "off"}), items)
    assert off.links == () and off.tracked is None
    for message in (
        off.message(delivery_id=1, subscriber_id=42, email="ada@example.com"),
        mailer_for(settings, items).message(
            delivery_id=1, subscriber_id=42, email="a@example.com", tracked=False
        ),
    ):
        assert "/r/" not in message.html and "/r/" not in message.text
        assert f"{SITE}/compare/" in message.text and "utm_campaign=2026-w48" in message.text


def test_a_reader_costs_one_hmac_however_many_tracked_links(settings, items, monkeypatch):
    mailer = mailer_for(settings, items)
    calls = []
    real = hmac.digest
    monkeypatch.setattr(hmac, "digest", lambda *args: calls.append(1) or real(*args))
    for reader in range(1, 11):
        message = mailer.message(delivery_id=reader, subscriber_id=reader, email=f"r{reader}@example.com")
        assert message.html and message.text
    assert len(calls) == 10


def test_link_codes_are_the_same_in_every_variant_of_an_issue(settings, items):
    full, short = mailer_for(settings, items, count=3), mailer_for(settings, items, count=1)
    codes_full = {spec.url: spec.code for spec in full.links}
    shared = [spec for spec in short.links if spec.url in codes_full]
    assert len(shared) >= 3 and all(codes_full[spec.url] == spec.code for spec in shared)


def test_the_token_verifies_only_as_made(settings, items):
    mailer = mailer_for(settings, items)
    link = next(spec for spec in mailer.links if spec.kind == LinkKind.COMPARISON)
    signer = LinkSigner(TEST_KEY.encode())
    part = signer.link_part(7, link.code, EXPIRES)
    token = f"{part}.{mailer.token_for(42)}"
    parsed = parse(token)
    assert (parsed.issue_id, parsed.code) == (7, link.code) and signer.matches(parsed, EXPIRES)
    assert not signer.matches(parsed, EXPIRES + 1)  # a reader token of another issue (other expiry)
    assert not LinkSigner(b"another-site-key-0123456789-abcdefghijkl").matches(parsed, EXPIRES)
    other = parse(f"8.{link.code}.{parsed.mac}.{parsed.reader_token}")
    assert not signer.matches(other, EXPIRES), "the MAC covers the issue"
    for broken in ("", "a.b", token + ".x", "07." + token[2:], token.replace(".", "..", 1), "x" * 500):
        with pytest.raises(BadLink):
            parse(broken)


def test_the_send_writes_the_link_table_and_the_redirect_resolves_only_its_links(settings, engine, items):
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(items, now, settings.zone), settings.zone)
        add_active(session, ["ada@example.com", "bob@example.com"], source="test", key=TEST_KEY.encode())
        issue = compose(session, Week.containing(now, settings.zone), settings).issue
        bob = session.exec(select(Subscriber).where(Subscriber.email == "bob@example.com")).one()
        set_tracking(session, bob, False, client=None)
        issue_id = issue.id
    report = asyncio.run(Sender(engine, settings, OutboxProvider(settings.outbox_dir)).send(issue_id))
    assert report.sent == 2
    with session_scope(engine) as session:
        stored = {
            row.code: row for row in session.exec(select(IssueLink).where(IssueLink.issue_id == issue_id))
        }
    texts = {}
    for path in settings.outbox_dir.glob("*/*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        texts[message["To"]] = message.get_body(("plain",)).get_content()
    paths = {path[3:] for path in tracked_paths(texts["ada@example.com"])}
    assert paths and "/r/" not in texts["bob@example.com"], "bob turned tracking off: plain links"
    resolver = LinkResolver(engine, TEST_KEY.encode())
    for path in paths:
        target = resolver.resolve(path)
        assert stored[parse(path).code].url == target.url and target.issue_id == issue_id
    path = next(iter(paths))
    foreign = Signer(b"another-site-key-0123456789-abcdefghijkl").sign("reader", 1, 2_000_000_000)
    tampered = {
        "issue": f"{int(path.split('.')[0]) + 1}." + path.split(".", 1)[1],
        "code": path.replace(parse(path).code, "zz", 1),
        "reader": path[:-1] + ("A" if path[-1] != "A" else "B"),
        "foreign reader": ".".join(path.split(".")[:3]) + "." + foreign,
    }
    for name, token in tampered.items():
        with pytest.raises(BadLink):
            resolver.resolve(token)
        assert name


def test_the_gates_look_through_tracked_links_to_their_destinations(settings, items):
    report = check_view(issue_from(items[:3], settings, week=WEEK), settings)
    assert report.passed, report.findings
    message = report.message
    rendered = message.content.rendered
    comparison = next(code for code, spec in rendered.tracked_links.items() if spec.kind == "comparison")
    assert f"/r/0.{comparison}." in message.html
    # a tracked link the issue does not know is an error, even though it points at the site
    forged = message.html.replace(f"/r/0.{comparison}.", "/r/0.zzzz.", 1)
    broken = check_message(
        dataclasses.replace(message, content=_Fixed(forged, message.text, rendered)),
        rendered.preheader,
        settings,
    )
    assert next(f.message for f in broken.findings if f.gate == "link-hosts").endswith(
        "is a tracked link to none of this issue's links"
    )
    # and a destination on a foreign host is found behind its tracked link
    foreign = items[0].model_copy(update={"url": "https://elsewhere.example.org/x"})
    report = check_view(issue_from([foreign, *items[1:3]], settings, week=WEEK), settings)
    assert any("elsewhere.example.org is neither the site" in f.message for f in report.errors)


class _Fixed:
    def __init__(self, html, text, rendered):
        self.html, self.text, self.rendered = html, text, rendered
