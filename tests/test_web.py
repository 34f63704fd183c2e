"""The readers' web app, served for real by uvicorn on 127.0.0.1 and driven over HTTP."""

from __future__ import annotations

import html
import json
import re
import time

import httpx
import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import ErasedAddress, Subscriber, SubscriberEvent, Vote
from newsletter.tokens import Signer
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import link_in, running_server

SIGNER = Signer(TEST_KEY.encode())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("web"), embed_origins="https://partner.example") as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as http:
        yield http


def subscriber(server, address: str) -> Subscriber | None:
    with Session(make_engine(database_url(server.directory))) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == address)).first()


def events(server, subscriber_id: int) -> list[SubscriberEvent]:
    with Session(make_engine(database_url(server.directory))) as session:
        return list(
            session.exec(select(SubscriberEvent).where(SubscriberEvent.subscriber_id == subscriber_id))
        )


def csrf(client) -> str:
    page = client.get("/")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def signup(client, address: str, **extra) -> httpx.Response:
    return client.post("/subscribe", data={"email": address, "csrf": csrf(client), **extra})


def subscribe_and_confirm(server, client, address: str) -> Subscriber:
    assert signup(client, address).status_code == 303
    confirm_path = link_in(server.mail_to(address), "/confirm/")
    assert client.post(confirm_path).status_code == 200
    return subscriber(server, address)


def reader_token(subscriber_id: int, expires: int | None = None) -> str:
    return SIGNER.sign("reader", subscriber_id, expires or int(time.time()) + 3600)


def test_signup_page_has_promise_form_label_and_honeypot(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "New AI tools ship daily. We compare them before you waste an afternoon." in page.text
    assert '<label for="email">' in page.text and 'type="email"' in page.text
    assert 'name="website"' in page.text and 'tabindex="-1"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "script-src" not in page.headers["content-security-policy"]


def test_double_opt_in_pending_then_get_changes_nothing_then_post_confirms(server, client):
    response = signup(client, "Dora@Example.com")
    assert response.status_code == 303 and response.headers["location"] == "/check-your-inbox"
    assert "Check your inbox" in client.get("/check-your-inbox").text
    pending = subscriber(server, "dora@example.com")
    assert pending.status == "pending"

    message = server.mail_to("dora@example.com")
    assert message["Subject"] == "Confirm your subscription to Weekly AI Tool Verdicts"
    assert message.get_body(("html",)) is not None and message.get_body(("plain",)) is not None
    assert message["List-Unsubscribe"] is None
    confirm_path = link_in(message, "/confirm/")

    scanned = client.get(confirm_path)
    assert scanned.status_code == 200 and "<button" in scanned.text and "Confirm" in scanned.text
    assert subscriber(server, "dora@example.com").status == "pending", "a GET must not confirm"

    confirmed = client.post(confirm_path)
    assert confirmed.status_code == 200 and "You're subscribed" in html.unescape(confirmed.text)
    active = subscriber(server, "dora@example.com")
    assert active.status == "active" and active.confirmed_at is not None
    own = [e for e in events(server, active.id) if e.kind != "welcomed"]  # the welcome: in the background
    assert [e.kind for e in own] == ["signup_requested", "confirmed"]
    assert all(e.client_hash and len(e.client_hash) == 32 for e in own)


def test_the_page_never_reveals_whether_an_address_is_on_the_list(server, client):
    subscribe_and_confirm(server, client, "known@example.com")
    known = signup(client, "known@example.com")
    unknown = signup(client, "stranger@example.com")
    assert (known.status_code, known.headers["location"]) == (
        unknown.status_code,
        unknown.headers["location"],
    )
    # The owner of the known address learns it by email instead.
    note = server.mail_to("known@example.com", kind="already-subscribed")
    assert "/preferences/" in note.get_body(("plain",)).get_content()


def test_json_endpoint_subscribes_and_refuses_bad_input_with_reasons(server, client):
    accepted = client.post("/api/subscribe", json={"email": "api-reader@example.com"})
    assert accepted.status_code == 202 and accepted.json()["status"] == "check-your-inbox"
    assert subscriber(server, "api-reader@example.com").status == "pending"

    invalid = client.post("/api/subscribe", json={"email": "not an address"})
    assert invalid.status_code == 422 and "not a valid email address" in invalid.json()["detail"]
    wrong_type = client.post(
        "/api/subscribe",
        content="email=x@example.com",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert wrong_type.status_code == 415
    garbage = client.post(
        "/api/subscribe", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert garbage.status_code == 422
    extra = client.post("/api/subscribe", json={"email": "a@example.com", "admin": True})
    assert extra.status_code == 422


def test_header_breaking_input_is_refused_and_nothing_is_stored(server, client):
    for attempt in ("evil@example.com\r\nBcc: victims@example.com", "evil@example.com\nSubject: hi"):
        response = client.post("/api/subscribe", json={"email": attempt})
        assert response.status_code == 422
        form = signup(client, attempt)
        assert form.status_code == 422 and 'aria-invalid="true"' in form.text
    assert subscriber(server, "evil@example.com") is None


def test_form_without_csrf_token_is_refused_unless_posted_from_an_allowed_site(server, client):
    forged = client.post(
        "/subscribe", data={"email": "forged@example.com"}, headers={"origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    assert subscriber(server, "forged@example.com") is None
    embedded = client.post(
        "/subscribe", data={"email": "embedded@example.com"}, headers={"origin": "https://partner.example"}
    )
    assert embedded.status_code == 303
    assert subscriber(server, "embedded@example.com").status == "pending"
    preflight = client.options(
        "/api/subscribe",
        headers={
            "origin": "https://partner.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.headers.get("access-control-allow-origin") == "https://partner.example"


def test_honeypot_gets_the_usual_answer_and_stores_nothing(server, client):
    response = signup(client, "bot@example.com", website="https://spam.example")
    assert response.status_code == 303 and response.headers["location"] == "/check-your-inbox"
    assert subscriber(server, "bot@example.com") is None
    assert server.mails_to("bot@example.com", "confirm") == 0


def test_one_click_unsubscribe_is_immediate_and_a_get_changes_nothing(server, client):
    reader = subscribe_and_confirm(server, client, "leaver@example.com")
    token = reader_token(reader.id)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "<button" in page.text and f"/preferences/{token}" in page.text
    assert subscriber(server, "leaver@example.com").status == "active"

    one_click = client.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    left = subscriber(server, "leaver@example.com")
    assert left.status == "unsubscribed" and left.unsubscribed_at is not None
    assert [e.source for e in events(server, left.id) if e.kind == "unsubscribed"] == ["one-click"]
    assert client.post(f"/unsubscribe/{token}").status_code == 200, "unsubscribing twice is fine"


def test_resubscribing_goes_through_confirmation_again_and_old_links_do_not_count(server, client):
    reader = subscribe_and_confirm(server, client, "returner@example.com")
    old_confirm = link_in(server.mail_to("returner@example.com"), "/confirm/")
    time.sleep(1.1)  # links carry whole seconds: leave in a later second than the old link was made
    client.post(f"/unsubscribe/{reader_token(reader.id)}")
    assert subscriber(server, "returner@example.com").status == "unsubscribed"

    assert signup(client, "returner@example.com").status_code == 303
    assert subscriber(server, "returner@example.com").status == "unsubscribed", "left until they confirm"
    stale = client.post(old_confirm)
    assert stale.status_code == 410
    assert subscriber(server, "returner@example.com").status == "unsubscribed"
    new_confirm = link_in(server.mail_to("returner@example.com", count=2), "/confirm/")
    assert new_confirm != old_confirm
    assert client.post(new_confirm).status_code == 200
    assert subscriber(server, "returner@example.com").status == "active"


def test_preferences_pause_categories_export_and_erase(server, client):
    reader = subscribe_and_confirm(server, client, "careful@example.com")
    token = reader_token(reader.id)
    page = client.get(f"/preferences/{token}")
    assert page.status_code == 200 and "careful@example.com" in page.text and "Developer Tools" in page.text

    paused = client.post(f"/preferences/{token}", data={"action": "pause", "weeks": "2"})
    assert paused.status_code == 303
    assert "Your pause is saved." in client.get(paused.headers["location"]).text
    after_pause = subscriber(server, "careful@example.com")
    assert after_pause.paused_until is not None and after_pause.status == "active"

    chosen = client.post(
        f"/preferences/{token}", data={"action": "categories", "category": ["Developer Tools", "Research"]}
    )
    assert chosen.status_code == 303
    assert json.loads(subscriber(server, "careful@example.com").categories) == ["Developer Tools", "Research"]
    bogus = client.post(f"/preferences/{token}", data={"action": "categories", "category": ["Astrology"]})
    assert bogus.status_code == 422 and "unknown categories" in bogus.text
    bad_weeks = client.post(f"/preferences/{token}", data={"action": "pause", "weeks": "999"})
    assert bad_weeks.status_code == 422

    export = client.get(f"/preferences/{token}/export")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    data = export.json()
    assert data["subscriber"]["email"] == "careful@example.com"
    kinds = [e["kind"] for e in data["events"] if e["kind"] != "welcomed"]  # the welcome: in the background
    assert kinds == ["signup_requested", "confirmed", "paused", "categories"]

    refused = client.post(f"/preferences/{token}/erase")
    assert refused.status_code == 422 and subscriber(server, "careful@example.com") is not None
    erased = client.post(f"/preferences/{token}/erase", data={"confirm": "yes"})
    assert erased.status_code == 200 and "erased" in erased.text
    assert subscriber(server, "careful@example.com") is None
    with Session(make_engine(database_url(server.directory))) as session:
        row = session.get(Subscriber, reader.id)
        assert row.email is None and row.status == "erased"
        assert [
            e.kind
            for e in session.exec(select(SubscriberEvent).where(SubscriberEvent.subscriber_id == reader.id))
        ] == ["erased"]
        assert len(list(session.exec(select(ErasedAddress)))) >= 1
    assert client.get(f"/preferences/{token}").status_code == 410

    csv = server.directory / "list.csv"
    csv.write_text("email,name\ncareful@example.com,Careful\n")
    imported = server.cli("subscribers", "import", str(csv))
    assert imported.returncode == 0 and "1 were erased at their request and were not added" in imported.stdout
    assert subscriber(server, "careful@example.com") is None


def test_votes_from_the_email_record_on_post_only_and_the_last_one_counts(server, client):
    reader = subscribe_and_confirm(server, client, "voter@example.com")
    token = reader_token(reader.id)
    base = f"/vote/{token}/cursor-vs-windsurf/windsurf"
    page = client.get(f"{base}/ship")
    assert page.status_code == 200 and "Ship it: Windsurf" in page.text
    assert 'data-community="windsurf">56%' in page.text  # the sample tally: 18 of 32

    shipped = client.post(f"{base}/ship")
    assert shipped.status_code == 200 and "your vote is in" in shipped.text
    assert 'data-community="windsurf">58%' in shipped.text  # 19 of 33
    skipped = client.post(f"{base}/skip")
    assert 'data-community="windsurf">55%' in skipped.text  # 18 of 33: the vote was replaced
    with Session(make_engine(database_url(server.directory))) as session:
        mine = list(session.exec(select(Vote).where(Vote.subscriber_id == reader.id)))
    assert [(v.verdict, v.voter) for v in mine] == [("skip", f"reader:{reader.id}")]

    assert client.get(f"/vote/{token}/no-such-comparison/windsurf/ship").status_code == 404
    assert client.get(f"/vote/{token}/cursor-vs-windsurf/midjourney-v7/ship").status_code == 404
    assert client.post(f"{base}/maybe").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/confirm/{token}",
        "/unsubscribe/{token}",
        "/preferences/{token}",
        "/vote/{token}/cursor-vs-windsurf/cursor/ship",
    ],
)
def test_bad_tampered_expired_and_wrong_purpose_tokens_get_clear_4xx(client, path):
    purpose = "confirm" if path.startswith("/confirm") else "reader"
    good = SIGNER.sign(purpose, 1, int(time.time()) + 3600)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    expired = SIGNER.sign(purpose, 1, int(time.time()) - 10)
    wrong_purpose = SIGNER.sign("reader" if purpose == "confirm" else "confirm", 1, int(time.time()) + 3600)
    for token, status in (("garbage", 400), (tampered, 400), (expired, 410), (wrong_purpose, 400)):
        for method in ("GET", "POST"):
            response = client.request(method, path.format(token=token))
            assert response.status_code == status, (token, method, response.text[:200])
            assert "Traceback" not in response.text
    expired_page = client.get(path.format(token=expired))
    assert "expired" in expired_page.text


def test_unknown_routes_wrong_methods_and_oversized_bodies_get_4xx_pages_or_json(client):
    assert client.get("/no/such/page").status_code == 404
    assert "There is no page at this address." in client.get("/no/such/page").text
    assert client.get("/no/such/page", headers={"accept": "application/json"}).json()["error"] == "Not found"
    assert client.delete("/").status_code == 405
    assert client.get("/api/subscribe").status_code == 405
    huge = client.post(
        "/api/subscribe", content=b"{" + b" " * 100_000 + b"}", headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413
    chunked = client.post(
        "/subscribe",
        content=iter([b"email=" + b"a" * 10_000] * 5),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert chunked.status_code == 413


def test_expired_links_offer_a_fresh_link_by_email(server, client):
    reader = subscribe_and_confirm(server, client, "forgetful@example.com")
    expired = client.get(f"/preferences/{reader_token(reader.id, expires=int(time.time()) - 5)}")
    assert expired.status_code == 410 and 'action="/manage"' in expired.text
    token = re.search(r'name="csrf" value="([^"]+)"', expired.text).group(1)
    sent = client.post("/manage", data={"email": "forgetful@example.com", "csrf": token})
    assert sent.status_code == 303
    fresh = link_in(server.mail_to("forgetful@example.com", kind="manage-link"), "/preferences/")
    assert client.get(fresh).status_code == 200


def test_rate_limits_answer_429_with_retry_after(tmp_path):
    with (
        running_server(
            tmp_path, signup_rate_per_client="3/minute", signup_rate_per_address="2/hour"
        ) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        for n in range(3):
            ok = http.post(
                "/api/subscribe",
                json={"email": f"c{n}@example.com"},
                headers={"x-forwarded-for": "203.0.113.7"},
            )
            assert ok.status_code == 202
        limited = http.post(
            "/api/subscribe", json={"email": "c9@example.com"}, headers={"x-forwarded-for": "203.0.113.7"}
        )
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
        other_client = http.post(
            "/api/subscribe", json={"email": "c9@example.com"}, headers={"x-forwarded-for": "198.51.100.2"}
        )
        assert other_client.status_code == 202

        for n, expected in enumerate((202, 429)):
            response = http.post(
                "/api/subscribe",
                json={"email": "c9@example.com"},
                headers={"x-forwarded-for": f"192.0.2.{n}"},
            )
            assert response.status_code == expected
        assert "retry-after" in response.headers
        assert server.mails_to("c9@example.com", "confirm") <= 2


# --- hostile input: each defect found, by its class -------------------------------------------------


def test_nul_and_unstorable_text_anywhere_gets_400_with_the_reason(server, client):
    reader = subscribe_and_confirm(server, client, "nul-tester@example.com")
    token = reader_token(reader.id)
    cookie, form_token = client.cookies.get("nl_csrf"), csrf(client)
    for method, path in (
        ("GET", "/compare/%00"),
        ("GET", "/compare/a%00b"),
        ("GET", "/compare/%ff%fe"),
        ("GET", "/issues/%ed%a0%80"),
        ("GET", f"/vote/{token}/%00/windsurf/ship"),
        ("POST", f"/vote/{token}/%00/x/ship"),
        ("POST", f"/vote/{token}/cursor-vs-windsurf/%00/ship"),
        ("GET", f"/vote/{token}/cursor-vs-windsurf/windsurf/ship%0d%0a"),
        ("GET", f"/preferences/{token}?saved=%00"),
        ("GET", "/?q=%ff"),
    ):
        response = client.request(method, path)
        assert response.status_code == 400, (method, path, response.status_code)
        assert "control character" in response.text or "not UTF-8" in response.text, response.text[-300:]
    for body in ("email=a%00@example.com&csrf=" + form_token, "email=%ff%fe@example.com&csrf=" + form_token):
        form = client.post(
            "/subscribe",
            content=body,
            headers={"content-type": "application/x-www-form-urlencoded", "cookie": f"nl_csrf={cookie}"},
        )
        assert form.status_code == 400 and ("NUL" in form.text or "UTF-8" in form.text)
    preferences = client.post(
        f"/preferences/{token}",
        content="action=categories&category=Research%00",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert preferences.status_code == 400
    for raw in (b'{"email": "a\\u0000@example.com"}', b'{"email": "\\ud800@example.com"}'):
        answer = client.post("/api/subscribe", content=raw, headers={"content-type": "application/json"})
        assert answer.status_code == 400 and "cannot be stored" in answer.json()["detail"]
    nested = client.post(
        "/api/subscribe", content=b"[" * 3000 + b"]" * 3000, headers={"content-type": "application/json"}
    )
    assert nested.status_code == 400 and "nested" in nested.json()["detail"]
    multipart = client.post("/subscribe", files={"email": ("x", b"a@example.com")})
    assert multipart.status_code == 415
    with Session(make_engine(database_url(server.directory))) as session:
        assert not [e for e in session.exec(select(Subscriber.email)) if e and ("\x00" in e or "\ufffd" in e)]


def test_a_chunked_body_over_the_limit_gets_a_clean_413_and_logs_no_exception(server, client):
    token = reader_token(subscribe_and_confirm(server, client, "chunky@example.com").id)
    for path, kind in (
        ("/api/subscribe", "application/json"),
        ("/subscribe", "application/x-www-form-urlencoded"),
        ("/manage", "application/x-www-form-urlencoded"),
        (f"/preferences/{token}", "application/x-www-form-urlencoded"),
        (f"/unsubscribe/{token}", "application/x-www-form-urlencoded"),
        (f"/preferences/{token}/erase", "application/x-www-form-urlencoded"),
        ("/subscribe", "text/plain"),
    ):
        response = client.post(path, content=iter([b"a" * 10_000] * 3), headers={"content-type": kind})
        assert response.status_code == 413, (path, kind, response.status_code)
        assert "too large" in response.text.lower()
    assert subscriber(server, "chunky@example.com").status == "active", "nothing was changed"
    log = (server.directory / "serve.log").read_text()  # stderr: written line by line
    assert "Exception in ASGI application" not in log and "Traceback" not in log, log[-3000:]


def test_redirects_go_to_this_site_only_whatever_the_host_header_or_path(server):
    from tests.hostile import Attempt, send

    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    trailing = send(host, port, Attempt("", "GET", "/issues/?utm_source=x", [("Host", "evil.example")]))
    assert trailing.status == 307
    assert re.search(r"(?im)^location: /issues\?utm_source=x\r?$", trailing.head), trailing.head
    for target in (
        "//evil.example/",
        "//evil.example/issues/",
        "/\\evil.example/issues/",
        "/%2f%2fevil.example/issues/",
        "/%5cevil.example/",
        "/issues//",
        "/issues%2f",
        "/compare/cursor-vs-windsurf/",
        "/feed.xml/",
    ):
        for host_header in ("evil.example", f"127.0.0.1:{port}"):
            answer = send(host, port, Attempt("", "GET", target, [("Host", host_header)]))
            assert answer.status and answer.status < 500, (target, answer.status)
            location = re.search(r"(?im)^location: (.*?)\r?$", answer.head)
            if location:
                assert location[1].startswith("/") and location[1][1:2] not in ("/", "\\"), (
                    target,
                    location[1],
                )
                assert "evil" not in location[1], (target, location[1])


def test_a_csrf_cookie_not_of_our_making_is_replaced_not_echoed(client):
    page = client.get("/", headers={"cookie": 'nl_csrf="\\000\\015\\012Set-Cookie: x=1"'})
    assert page.status_code == 200
    fresh = page.cookies.get("nl_csrf")
    assert fresh and re.fullmatch(r"[A-Za-z0-9_-]{32}", fresh)
