"""The preview studio inside the editors' console: a real `newsletter preview` process, looked at with
httpx and Chromium (the console's own pages and actions: tests/test_console*.py)."""

from __future__ import annotations

import email
import ipaddress
import re
import shutil
import socket
from contextlib import contextmanager
from datetime import UTC, datetime
from email import policy

import httpx
import pytest

from newsletter.console.app import TEST_SENDS
from newsletter.console.app import create_console as create_studio
from newsletter.curation import Week
from newsletter.render import templates_dir
from tests.browser import artifact
from tests.hostile import Attempt, Context, battery, send
from tests.served import launched
from tests.test_email_in_browser import tool_cards
from tests.web_server import Server, server_env, serving

READER = "secret-reader@example.com"  # a real reader: the studio must never show them


@contextmanager
def studio(directory, *init_args: str, templates: bool = False):
    """`newsletter preview` on a store made with `newsletter init <init_args>` and one reader,
    optionally on a copy of the templates (as `server.templates`)."""
    server = Server(url="", directory=directory, env=server_env(directory))
    assert server.cli("init", *init_args).returncode == 0
    assert server.cli("subscribers", "add", READER).returncode == 0
    args: tuple[str, ...] = ()
    if templates:
        server.templates = shutil.copytree(templates_dir(), directory / "templates")
        args = ("--templates", str(server.templates))
    with serving(server, "preview", *args):
        yield server


def this_week() -> str:
    return Week.containing(datetime.now(UTC), UTC).label  # the processes run on the default zone, UTC


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with studio(tmp_path_factory.mktemp("studio"), "--sample") as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_the_list_shows_the_sample_and_this_weeks_pick_then_its_draft(server, client):
    listing = client.get("/issues")
    assert listing.status_code == 200
    assert 'href="/issues/sample"' in listing.text
    assert re.search(rf'href="/issues/{this_week()}">.*?not composed yet', listing.text, re.S)
    assert server.cli("issue", "compose").returncode == 0
    assert re.search(rf'href="/issues/{this_week()}">.*?<td>draft</td>', client.get("/issues").text, re.S)


def test_the_issue_page_shows_headers_size_frames_text_and_checks(client):
    page = client.get(f"/issues/{this_week()}")
    assert page.status_code == 200
    assert "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite, plus 2 more verdicts" in page.text
    assert re.search(r'data-field="preheader">Panel: Claude Haiku Open Weights 50% ship', page.text)
    assert "Weekly AI Tool Verdicts &lt;issue@verdicts.example.com&gt;" in page.text
    assert re.search(r"\d+\.\d KB of Gmail's 102 KB", page.text)
    for frame in ('width="600" src="/issues/', 'width="375" src="/issues/', "email.html?scheme=dark"):
        assert frame in page.text
    assert "REVIEWER SCORECARD" in page.text  # the plain-text part
    assert len(re.findall(r'data-result="ok"', page.text)) == 12, "all twelve checks pass"
    nonce = re.search(r'<script nonce="([^"]+)">', page.text)[1]
    assert f"script-src 'nonce-{nonce}'" in page.headers["content-security-policy"]

    frame = client.get(f"/issues/{this_week()}/email.html")
    assert frame.text.lstrip().lower().startswith("<!doctype html>")
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
    dark = client.get(f"/issues/{this_week()}/email.html?scheme=dark").text
    assert "prefers-color-scheme" in frame.text and "prefers-color-scheme" not in dark


def test_no_reader_data_is_shown(client):
    for path in ("/issues", f"/issues/{this_week()}", f"/issues/{this_week()}/email.html", "/issues/sample"):
        assert READER not in client.get(path).text


def test_only_local_host_names_are_answered(client):
    assert client.get("/", headers={"Host": "studio.attacker.example"}).status_code == 400


def test_frames_side_by_side_at_600_and_stacked_without_scroll_at_375(browser, server):
    page = browser.new_page(viewport={"width": 1700, "height": 1000})
    page.route("**/*", lambda route: route.continue_() if "127.0.0.1" in route.request.url else route.abort())
    page.goto(f"{server.url}/issues/{this_week()}", wait_until="load")
    desktop, phone, dark = (page.frame(name=name) for name in ("desktop", "phone", "dark"))

    left, right = tool_cards(desktop)
    assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"] - 1
    assert desktop.evaluate("document.documentElement.scrollWidth") <= 600

    left, right = tool_cards(phone)
    assert right["y"] >= left["y"] + left["height"] - 1, "the second tool sits below the first"
    assert phone.evaluate("document.documentElement.clientWidth") == 375
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375, "no horizontal scroll"

    assert dark.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 24, 39)"
    page.locator("iframe[name=desktop]").screenshot(path=artifact("studio-600.png"))
    page.locator("iframe[name=phone]").screenshot(path=artifact("studio-375.png"))
    page.screenshot(path=artifact("studio-page.png"))
    page.close()


def test_send_a_test_goes_through_the_provider_marked_as_a_test(server, client):
    page = client.get(f"/issues/{this_week()}")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    forged = client.post(f"/issues/{this_week()}/test", data={"email": "editor@example.com", "csrf": "x.y"})
    assert forged.status_code == 403 and "expired" in forged.text
    bad = client.post(f"/issues/{this_week()}/test", data={"email": "not an address", "csrf": token})
    assert bad.status_code == 422 and "check the address" in bad.text
    assert not (server.outbox / "test").exists()

    sent = client.post(f"/issues/{this_week()}/test", data={"email": "editor@example.com", "csrf": token})
    assert sent.status_code == 303
    assert "Test sent to editor@example.com" in client.get(sent.headers["location"]).text
    (path,) = (server.outbox / "test").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["To"] == "editor@example.com"
    assert message["Subject"].startswith("[TEST] Claude Haiku Open Weights vs Gemini 2.5 Flash Lite")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "REVIEWER SCORECARD" in message.get_body(("plain",)).get_content()


def test_an_empty_store_previews_the_packaged_sample(tmp_path):
    with studio(tmp_path) as running, httpx.Client(base_url=running.url) as client:
        listing = client.get("/issues")
        assert re.findall(r'href="/issues/([^"]+)"', listing.text) == ["sample"]
        sample = client.get("/issues/sample")
        assert sample.status_code == 200 and "plus 2 more verdicts" in sample.text
        assert client.get("/issues/sample/email.html").status_code == 200
        assert client.get(f"/issues/{this_week()}").status_code == 404


def test_the_page_reloads_when_a_template_or_the_content_changes(browser, tmp_path):
    with studio(tmp_path, "--sample", templates=True) as running:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{running.url}/issues/sample", wait_until="load")
        assert page.locator("tr[data-gate=lang]").get_attribute("data-result") == "ok"
        issue = running.templates / "email" / "issue.mjml.j2"
        with page.expect_navigation(timeout=15_000):
            issue.write_text(
                issue.read_text()
                .replace("Read the full comparison", "Read the whole comparison")
                .replace('<mjml lang="en">', "<mjml>")
            )
        page.wait_for_load_state("load")
        assert "Read the whole comparison" in page.frame(name="desktop").content()
        assert page.locator("tr[data-gate=lang]").get_attribute("data-result") == "error"
        assert 'lang="und"' in page.locator("tr[data-gate=lang]").inner_text()

        page.goto(f"{running.url}/issues/{this_week()}", wait_until="load")
        with page.expect_navigation(timeout=15_000):
            pinned = running.cli("comparisons", "pin", "lovable-vs-bolt-new")
            assert pinned.returncode == 0, pinned.stderr
        page.wait_for_load_state("load")
        assert page.locator("[data-field=headline]").inner_text().startswith("Lovable vs Bolt.new")
        page.close()


def outside_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def csrf_pair(client: httpx.Client, path: str, cookie_name: str) -> tuple[str, str]:
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    return page.cookies[cookie_name], re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_a_csrf_pair_of_the_readers_app_is_refused_by_the_studio(server, client):
    readers = Server(url="", directory=server.directory, env=server.env)
    with launched(readers, "serve"), httpx.Client(base_url=readers.url) as public:
        cookie, token = csrf_pair(public, "/", "nl_csrf")
    path = f"/issues/{this_week()}/test"
    for cookies in (
        {"nl_csrf": cookie},
        {"nl_studio_csrf": cookie},
        {"nl_csrf": cookie, "nl_studio_csrf": cookie},
    ):
        with httpx.Client(base_url=server.url, cookies=cookies) as borrowed:
            refused = borrowed.post(path, data={"email": "borrowed@example.com", "csrf": token})
        assert refused.status_code == 403 and "expired" in refused.text, cookies
    sent = (
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in server.outbox.rglob("*.eml")
    )
    assert "borrowed@example.com" not in [message["To"] for message in sent]


def test_tests_go_out_at_a_limited_rate(tmp_path):
    server = Server(url="", directory=tmp_path, env=server_env(tmp_path))
    assert server.cli("init", "--sample").returncode == 0
    with launched(server, "preview") as studio, httpx.Client(base_url=studio.url) as local:
        path = f"/issues/{this_week()}/test"
        cookie, token = csrf_pair(local, f"/issues/{this_week()}", "nl_studio_csrf")
        for n in range(TEST_SENDS[0]):
            sent = local.post(path, data={"email": f"editor{n}@example.com", "csrf": token})
            assert sent.status_code == 303, (n, sent.text[-500:])
        limited = local.post(path, data={"email": "one-more@example.com", "csrf": token})
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= TEST_SENDS[1]
    assert "Too many tests" in limited.text
    assert len(list((server.outbox / "test").glob("*.eml"))) == TEST_SENDS[0]


def test_hostile_requests_get_no_5xx_and_redirects_stay_on_the_studio(server, settings):
    schema = create_studio(settings, None).openapi()  # the studio serves no schema; its routes have one
    context = Context(
        path_values={"key": "sample", "slug": "lovable-vs-bolt-new"},
        form_values={"email": "editor%40example.com", "csrf": "1.x"},
        json_values={"email": "editor@example.com"},
    )
    host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
    failures, count = [], 0
    for attempt in battery(schema, context):
        count += 1
        answer = send(host, port, attempt, timeout=10)
        if (answer.status is None and "over the limit" not in attempt.label) or (answer.status or 0) >= 500:
            failures.append(f"{attempt.label}: {answer.status or answer.error}")
        location = re.search(r"(?im)^location: (.*?)\r?$", answer.head)
        if location and not (location[1].startswith("/") and location[1][1:2] not in ("/", "\\")):
            failures.append(f"{attempt.label}: redirected to {location[1]}")
    assert count > 500 and not failures, "\n".join(failures[:30])
    slash = send(host, port, Attempt("", "GET", "/issues/sample/", [("Host", f"localhost:{port}")]))
    assert slash.status == 307 and re.search(r"(?im)^location: /issues/sample\r?$", slash.head)
    log = (server.directory / "preview.log").read_text()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
