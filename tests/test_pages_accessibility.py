"""Every page a reader can reach, checked by axe-core in a real Chromium, light and dark, desktop and
phone: no violation, with every rule on (these are web pages, not email). And the comparison pages show
what the email shows."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session, select

from newsletter.curation import Week
from newsletter.db import make_engine
from newsletter.models import Subscriber
from newsletter.samples import sample_comparisons
from newsletter.tokens import Signer
from tests.axe import describe, violations
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import link_in, running_server

pytestmark = pytest.mark.sqlite_pass_only  # the page's or email's HTML, the same on any store

SIGNER = Signer(TEST_KEY.encode())
COMPARISON = "claude-haiku-open-weights-vs-gemini-2-5-flash-lite"
VIEWS = [("light", 1024), ("dark", 1024), ("light", 375), ("dark", 375)]
LEAVERS = {view: f"leaver-{view[0]}-{view[1]}@example.com" for view in VIEWS}  # one per view: it leaves


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """This week's issue sent to two readers; a third has signed up and not confirmed yet."""
    with running_server(tmp_path_factory.mktemp("pages-axe")) as running:
        for args in (
            ("subscribers", "add", "ada@example.com", "gone@example.com", *LEAVERS.values()),
            ("issue", "compose"),
            ("issue", "send"),
        ):
            result = running.cli(*args)
            assert result.returncode == 0, result.stdout + result.stderr
        yield running


@pytest.fixture(scope="module")
def links(server, browser):
    """Paths that need a token, found the way a reader finds them: in the emails."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    page.get_by_label("Your email address").fill("pending@example.com")
    page.get_by_role("button", name="Get the weekly verdicts").click()
    page.wait_for_url("**/check-your-inbox")
    context.close()
    with Session(make_engine(database_url(server.directory))) as session:
        ids = {s.email: s.id for s in session.exec(select(Subscriber))}
    ada = SIGNER.sign("reader", ids["ada@example.com"], int(time.time()) + 3600)
    gone = SIGNER.sign("reader", ids["gone@example.com"], int(time.time()) + 3600)
    assert httpx.post(f"{server.url}/unsubscribe/{gone}", timeout=10).status_code == 200
    return {
        "gone": gone,
        **{
            f"leaver-{scheme}-{width}": SIGNER.sign("reader", ids[address], int(time.time()) + 3600)
            for (scheme, width), address in LEAVERS.items()
        },
        "confirm": link_in(server.mail_to("pending@example.com"), "/confirm/"),
        "ada": ada,
        "stay": SIGNER.sign("stay", ids["ada@example.com"], int(time.time()) + 3600),
        "expired": SIGNER.sign("reader", ids["ada@example.com"], int(time.time()) - 10),
        "nobody": SIGNER.sign("reader", 999_999, int(time.time()) + 3600),
    }


def week_slug() -> str:
    return Week.containing(datetime.now(UTC), UTC).label.lower()


# (name, path, the status it answers, a button to press first, or None)
PAGES = [
    ("signup", "/", 200, None),
    ("check-your-inbox", "/check-your-inbox", 200, None),
    ("confirm", "{confirm}", 200, None),
    ("confirmed", "{confirm}", 200, "Confirm"),
    ("unsubscribe", "/unsubscribe/{ada}", 200, None),
    ("unsubscribed", "/unsubscribe/{leaver}", 200, "Unsubscribe"),
    ("left", "/unsubscribe/{gone}", 200, None),
    ("come-back", "/unsubscribe/{gone}", 200, "Come back"),
    ("preferences", "/preferences/{ada}", 200, None),
    ("stay", "/stay/{stay}", 200, None),
    ("stayed", "/stay/{stay}", 200, "Keep sending it"),
    ("vote", f"/vote/{{ada}}/{COMPARISON}/gemini-2-5-flash-lite/ship", 200, None),
    ("voted", f"/vote/{{ada}}/{COMPARISON}/claude-haiku-open-weights/skip", 200, "Skip it"),
    ("compare", f"/compare/{COMPARISON}", 200, None),
    ("issues", "/issues", 200, None),
    ("issue-web-version", "/issues/{week}", 200, None),
    ("manage", "/manage", 200, None),
    ("404-page", "/no/such/page", 404, None),
    ("404-comparison", "/compare/no-such-comparison", 404, None),
    ("400-bad-link", "/preferences/not-a-token", 400, None),
    ("410-expired-link", "/preferences/{expired}", 410, None),
    ("410-gone-reader", "/preferences/{nobody}", 410, None),
    ("405-method", "/subscribe", 405, None),
]


@pytest.mark.parametrize(("scheme", "width"), VIEWS, ids=[f"{s}-{w}" for s, w in VIEWS])
@pytest.mark.parametrize(("name", "path", "status", "press"), PAGES, ids=[p[0] for p in PAGES])
def test_reader_pages_have_no_axe_violation(browser, server, links, scheme, width, name, path, status, press):
    # The pages forbid scripts (CSP); bypass_csp lets axe in without weakening the page itself.
    context = browser.new_context(
        viewport={"width": width, "height": 900}, color_scheme=scheme, bypass_csp=True
    )
    page = context.new_page()
    leaver = links[f"leaver-{scheme}-{width}"]
    response = page.goto(server.url + path.format(week=week_slug(), leaver=leaver, **links))
    assert response.status == status, (name, response.status)
    if press:
        page.get_by_role("button", name=press).first.click()
        page.wait_for_load_state()
    assert page.evaluate("document.scripts.length") == 0, "the page itself carries no script"
    found = violations(page)
    context.close()
    assert not found, f"{name} ({scheme}, {width} px):\n{describe(found)}"


@pytest.mark.parametrize("page", ["compare", "issue-web-version"])
def test_the_web_pages_show_what_the_email_shows(server, page):
    path = {"compare": f"/compare/{COMPARISON}", "issue-web-version": f"/issues/{week_slug()}"}[page]
    body = httpx.get(server.url + path, timeout=10).text
    shown = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())
    seed = sample_comparisons()[0]
    for tool in (seed.tools.left, seed.tools.right):
        assert f"{tool.category} {tool.name} by {tool.vendor}" in shown
        assert " ".join(tool.description.split()) in shown
    # nobody votes on Gemini here (the "voted" page above votes on the other tool)
    words = '<span class="figure figure-words" data-community="gemini-2-5-flash-lite">No votes yet</span>'
    assert f"{words} community" in body
    assert ">—<" not in body
    grid = re.search(r'<table class="verdicts">(.*?)</table>', body, re.S)[1]
    assert grid.count('scope="col"') == 3 and grid.count('scope="row"') == 5
    assert re.search(r'<th scope="row">Competition</th><td><strong class="skip">SKIP', grid)
    assert 'id="scorecard"' in body or 'id="1-scorecard"' in body
    positions = [shown.index(" ".join(r.quote.split())[:60]) for r in seed.reviews]
    assert positions == sorted(positions), "the quotes a lens at a time, left tool then right"
