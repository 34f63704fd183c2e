"""The editors' console in Debian's Chromium, as an editor uses it: log in, compose, reorder the pick,
edit the subject (checked as it is typed), approve, send to 200 readers through the provider
emulator while the page follows the ledger to 100% without a reload, open the report and download a
CSV. A post from another site is refused. axe-core finds no violation on any console page, light
and dark. Screenshots go to test-artifacts/."""

from __future__ import annotations

import http.server
import re
import threading

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Delivery, DeliveryStatus, EditorEvent, Issue, IssueStatus
from newsletter.passwords import hash_password
from tests.axe import describe, violations
from tests.browser import artifact
from tests.databases import database_url
from tests.emulator_server import running_emulator
from tests.served import launched
from tests.test_studio import this_week
from tests.web_server import Server, server_env

READERS = 200
PASSWORD = "the editor's passphrase"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A console with a login, on every address, sending through the emulator (Postmark) in batches
    of ten, a tenth of a second each, so the send takes a few seconds to watch."""
    directory = tmp_path_factory.mktemp("console-browser")
    with running_emulator("--seed", "3", "--latency-ms", "120") as emulator:
        env = (
            server_env(directory)
            | emulator.provider_env("postmark")
            | {
                "NEWSLETTER_EDITOR_NAME": "ada",
                "NEWSLETTER_EDITOR_PASSWORD_HASH": hash_password(PASSWORD, cost=(2**10, 8, 1)),
                "NEWSLETTER_SEND_BATCH_SIZE": "10",
                "NEWSLETTER_SEND_CONCURRENCY": "1",
            }
        )
        server = Server(url="", directory=directory, env=env)
        assert server.cli("init", "--sample").returncode == 0
        (directory / "list.csv").write_text(
            "email\n" + "\n".join(f"reader{n:03d}@example.com" for n in range(READERS)) + "\n"
        )
        imported = server.cli("subscribers", "import", str(directory / "list.csv"))
        assert imported.returncode == 0, imported.stderr
        with launched(server, "preview", "--host", "0.0.0.0") as process:  # noqa: S104
            port = process.url.rsplit(":", 1)[1]
            server.url = f"http://localhost:{port}"  # a Secure cookie travels over http to localhost only
            yield server, emulator


def log_in(context, url: str):
    page = context.new_page()
    page.goto(url + "/")
    assert "/login" in page.url
    page.get_by_label("Name").fill("ada")
    page.get_by_label("Password or token").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url + "/")
    return page


def pick_order(page) -> list[str]:
    return page.locator("tr[data-pick]").evaluate_all("rows => rows.map(r => r.dataset.pick)")


@pytest.fixture(scope="module")
def flow(browser, console):
    """The whole week, once, in one logged-in page; the tests below check what it left."""
    server, emulator = console
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = log_in(context, server.url)
    page.get_by_role("button", name="Compose the draft").click()
    page.wait_for_url("**/?done=composed")
    before = pick_order(page)
    assert len(before) == 3

    title = page.locator(f"tr[data-pick='{before[0]}'] strong").first.inner_text()
    page.get_by_role("button", name=f"Move down: {title}").click()
    page.wait_for_url("**/?done=moved")
    after = pick_order(page)
    assert after == [before[1], before[0], before[2]]

    subject = page.get_by_label("Subject", exact=True)
    subject.fill("Two tools, one verdict: this week's split panel")
    expect(page.locator("#live-checks")).to_have_text(re.compile(r"^Checks with"))
    typed = page.locator("#live-checks").inner_text()
    subject.fill("x" * 200)  # too long for the subject rule: said as it is typed
    expect(page.locator("[data-problem=subject]")).to_have_text(re.compile(r"\w"))
    assert subject.get_attribute("aria-invalid") == "true"
    subject.fill("Two tools, one verdict: this week's split panel")
    page.screenshot(path=artifact("console-week-editing.png"), full_page=True)
    page.get_by_role("button", name="Save subject and preheader").click()
    page.wait_for_url("**/?done=edited")
    assert page.locator("[data-field=subject]").inner_text().startswith("Two tools, one verdict")

    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/?done=approved")
    page.get_by_role("link", name="Send now…").click()
    confirm = page.get_by_role("button", name=f"Send to {READERS} readers")
    assert page.locator("[data-readers]").get_attribute("data-readers") == str(READERS)
    page.screenshot(path=artifact("console-send-confirm.png"))
    confirm.click()
    page.wait_for_url(f"**/issues/{this_week()}?done=sending")
    page.evaluate("window.notReloaded = true")
    seen = set()
    for _ in range(600):
        seen.add(page.locator("[data-live-field=percent-text]").inner_text())
        if "100.0%" in seen or "100%" in seen:
            break
        page.wait_for_timeout(50)
    page.screenshot(path=artifact("console-sent.png"), full_page=True)
    assert page.evaluate("window.notReloaded === true"), "the figures moved without a reload"
    assert {"100.0%", "100%"} & seen, seen
    expect(page.locator("[data-live-field=run]")).to_have_text(re.compile(r"^Sent "))
    progress_seen = sorted(seen)
    page.reload()  # a plain refresh shows the same figures, rendered by the server
    assert page.locator("[data-live-field=sent]").inner_text() == f"{READERS:,}"

    page.get_by_role("link", name="What it did").click()
    page.wait_for_url(f"**/issues/{this_week()}/report")
    page.screenshot(path=artifact("console-report.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download “ledger” as CSV").click()
    ledger_csv = download.value.path().read_text()
    recipients = page.locator("[data-figure=recipients]").inner_text()
    context.close()
    return {
        "before": before,
        "after": after,
        "typed": typed,
        "seen": progress_seen,
        "csv": ledger_csv,
        "recipients": recipients,
    }


def test_the_editor_reorders_edits_approves_and_sends_to_everyone_once(console, flow):
    server, emulator = console
    assert flow["after"] != flow["before"]
    assert "0 error(s)" in flow["typed"], flow["typed"]
    assert len(flow["seen"]) >= 3, f"the progress moved through several figures: {flow['seen']}"
    per_address = emulator.counts()
    assert len(per_address) == READERS and set(per_address.values()) == {1}, "every reader exactly once"
    with Session(make_engine(database_url(server.directory))) as store:
        issue = store.exec(select(Issue)).one()
        sent = store.exec(select(Delivery).where(Delivery.status == DeliveryStatus.SENT)).all()
        actions = [(e.editor, e.action) for e in store.exec(select(EditorEvent).order_by(EditorEvent.id))]
    assert issue.status == IssueStatus.SENT and len(sent) == READERS
    assert issue.subject_override == "Two tools, one verdict: this week's split panel"
    for action in ("login", "compose", "reorder", "edit", "approve", "send"):
        assert ("ada", action) in actions, actions


def test_the_report_shows_the_send_and_its_csv_downloads(flow):
    assert flow["recipients"] == f"{READERS:,}"
    lines = flow["csv"].strip().splitlines()
    assert lines[0] == "status,deliveries" and f"sent,{READERS}" in lines


def test_a_post_from_another_site_is_refused(browser, console, flow):
    """A page on another origin (127.0.0.1 is another site than localhost) posts a form to cancel the
    issue while the editor is logged in: 403, and the issue is as it was."""
    server, _ = console
    port = server.url.rsplit(":", 1)[1]
    evil = (
        f'<!doctype html><title>win a prize</title><form method="post" action="http://localhost:{port}'
        f'/issues/{this_week()}/cancel"><input name="next" value="/"><button>Claim</button></form>'
    ).encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args):
            pass

    site = http.server.HTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    context = browser.new_context()
    log_in(context, server.url)
    page = context.new_page()
    page.goto(f"http://127.0.0.1:{site.server_port}/")
    with page.expect_response(f"**/issues/{this_week()}/cancel") as answer:
        page.get_by_role("button", name="Claim").click()
    assert answer.value.status == 403
    context.close()
    site.shutdown()
    with Session(make_engine(database_url(server.directory))) as store:
        assert store.exec(select(Issue)).one().status == IssueStatus.SENT


PAGES = [
    ("week", "/"),
    ("issues", "/issues"),
    ("issue", "/issues/{week}"),
    ("report", "/issues/{week}/report"),
    ("readers", "/readers"),
    ("content", "/content"),
    ("activity", "/activity"),
    ("sample", "/issues/sample"),
    ("not-found", "/no/such/page"),
]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_console_pages_have_no_axe_violation(browser, console, flow, scheme):
    server, _ = console
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, color_scheme=scheme, bypass_csp=True
    )
    login = context.new_page()
    login.goto(server.url + "/login")
    found = {"login": violations(login)}
    log_in(context, server.url).close()
    for name, path in PAGES:
        page = context.new_page()
        page.goto(server.url + path.format(week=this_week()))
        found[name] = violations(page)
        if name in ("week", "report", "readers"):
            page.screenshot(path=artifact(f"console-{name}-{scheme}.png"), full_page=True)
        page.close()
    page = context.new_page()  # a reader found, and an upload refused: pages with their own parts
    page.goto(server.url + "/readers")
    page.get_by_label("Address").fill("reader007@example.com")
    page.get_by_role("button", name="Find").click()
    page.wait_for_selector("[data-field=reader-status]")
    found["reader"] = violations(page)
    page.goto(server.url + "/content")
    page.get_by_label("Comparison files").set_input_files(
        files=[{"name": "bad.yaml", "mimeType": "application/yaml", "buffer": b"slug: Not A Slug\n"}]
    )
    page.get_by_role("button", name="Upload and import").click()
    page.wait_for_selector("#upload-problems")
    found["upload-refused"] = violations(page)
    page.goto(server.url + f"/issues/{this_week()}/cancel")
    found["confirm"] = violations(page)
    context.close()
    failing = {name: describe(v) for name, v in found.items() if v}
    assert not failing, "\n".join(f"{name} ({scheme}):\n{text}" for name, text in failing.items())
