"""Who gets into a real `newsletter preview` (the console), over HTTP: it refuses to listen beyond
loopback without editor credentials; with them every page needs a login (rate-limited, a Secure,
HttpOnly, SameSite=Strict session), a Bearer token works for scripts, and no POST is believed
without the console's CSRF token and a same-origin browser. Every change is an editor event."""

from __future__ import annotations

import getpass
import re
import subprocess
import sys

import httpx
import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import EditorEvent
from newsletter.passwords import hash_password
from newsletter.samples import sample_comparisons
from tests.databases import database_url
from tests.served import launched
from tests.test_studio import this_week
from tests.web_server import Server, server_env

PASSWORD = "a long editor passphrase"
TOKEN = "editor-token-0123456789-abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """A console bound to every address, with a password, a token and a login rate of 3 a minute."""
    directory = tmp_path_factory.mktemp("console-access")
    env = server_env(directory) | {
        "NEWSLETTER_EDITOR_NAME": "ada",
        "NEWSLETTER_EDITOR_PASSWORD_HASH": hash_password(PASSWORD, cost=(2**10, 8, 1)),
        "NEWSLETTER_EDITOR_TOKEN": TOKEN,
        "NEWSLETTER_CONSOLE_LOGIN_RATE": "3/minute",
    }
    server = Server(url="", directory=directory, env=env)
    assert server.cli("init", "--sample").returncode == 0
    with launched(server, "preview", "--host", "0.0.0.0") as process:  # noqa: S104
        yield server, process


def form_token(page: httpx.Response) -> tuple[str, str]:
    """The CSRF cookie (read from Set-Cookie: httpx keeps no Secure cookie over http) and field."""
    cookie = re.search(r"nl_studio_csrf=([^;]+)", page.headers["set-cookie"])[1]
    return cookie, re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def test_beyond_loopback_without_credentials_the_console_does_not_start(tmp_path):
    env = server_env(tmp_path)
    assert subprocess.run([sys.executable, "-m", "newsletter", "init"], cwd=tmp_path, env=env).returncode == 0
    for command in ("preview", "console"):
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", command, "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stdout + done.stderr
        assert "without a login" in done.stderr and "NEWSLETTER_EDITOR_PASSWORD_HASH" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_every_page_needs_a_login(console):
    server, process = console
    assert "(a login)" in process.log()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get("/issues", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fissues"
        for path in ("/", "/content", f"/issues/{this_week()}", f"/issues/{this_week()}/progress"):
            assert client.get(path).status_code == 401, path
        assert client.get("/healthz").status_code == 200
        assert client.get("/login").status_code == 200


def test_the_login_sets_a_strict_secure_session_and_logout_ends_it(console):
    server, _ = console
    with httpx.Client(base_url=server.url, timeout=10) as client:
        cookie, token = form_token(client.get("/login"))
        jar = {"Cookie": f"nl_studio_csrf={cookie}"}
        form = {"csrf": token, "name": "ada", "password": PASSWORD, "next": "/content"}
        done = client.post("/login", data=form, headers=jar)
        assert done.status_code == 303 and done.headers["location"] == "/content"
        set_cookie = done.headers["set-cookie"]
        for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
            assert flag.lower() in set_cookie.lower(), set_cookie
        session = re.search(r"nl_console_session=([^;]+)", set_cookie)[1]
        logged_in = {"Cookie": f"nl_studio_csrf={cookie}; nl_console_session={session}"}
        assert client.get("/content", headers=logged_in).status_code == 200
        elsewhere = client.post("/login", data=form | {"next": "//evil.example/x"}, headers=jar)
        assert elsewhere.headers["location"] == "/", "the next page is always on the console"

        assert client.post("/logout", data={"csrf": token}, headers=logged_in).status_code == 303
        assert client.get("/content", headers=logged_in).status_code == 401, "logged out"
    with Session(make_engine(database_url(server.directory))) as store:
        actions = [(e.editor, e.action, e.detail) for e in store.exec(select(EditorEvent))]
    assert ("ada", "login", "via password") in actions and ("ada", "logout", "via session") in actions


def test_wrong_passwords_are_refused_and_rate_limited_per_client(console):
    server, _ = console
    with httpx.Client(base_url=server.url, timeout=10) as client:
        cookie, token = form_token(client.get("/login"))
        jar = {"Cookie": f"nl_studio_csrf={cookie}"}
        answers = [
            client.post("/login", data={"csrf": token, "name": "ada", "password": f"guess {n}"}, headers=jar)
            for n in range(3)
        ]
        assert [a.status_code for a in answers] == [401, 401, 401]
        assert "nl_console_session" not in "".join(a.headers.get("set-cookie", "") for a in answers)
        limited = client.post(
            "/login", data={"csrf": token, "name": "ada", "password": PASSWORD}, headers=jar
        )
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
        assert "nl_console_session" not in limited.headers.get("set-cookie", "")


def test_a_bearer_token_lets_a_script_in_and_posts_need_no_form_token(console):
    server, _ = console
    bearer = {"Authorization": f"Bearer {TOKEN}", "accept": "text/html"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/", headers=bearer).status_code == 200
        wrong = client.get("/", headers={"Authorization": "Bearer not-the-token", "accept": "text/html"})
        assert wrong.status_code == 303
        composed = client.post(f"/issues/{this_week()}/compose", data={"next": "/"}, headers=bearer)
        assert composed.status_code == 303 and "done=composed" in composed.headers["location"]
    with Session(make_engine(database_url(server.directory))) as store:
        event = store.exec(select(EditorEvent).where(EditorEvent.action == "compose")).one()
    assert event.editor == "ada" and event.issue_id is not None and event.at is not None


def test_the_activity_page_shows_every_change_whoever_made_it(console):
    server, _ = console
    slug = sample_comparisons()[0].slug
    assert server.cli("comparisons", "pin", slug).returncode == 0
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/activity").status_code == 401, "behind the login like every page"
        page = client.get("/activity", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    rows = re.findall(r'<tr data-event="([^"]+)"><td>[^<]+</td><td>([^<]+)</td>', page.text)
    who = f"cli:{getpass.getuser()}"
    assert ("pin", who) in rows and ("import", who) in rows, rows  # `init --sample` imported
    assert rows.index(("pin", who)) < rows.index(("import", who)), "newest first"


def test_cross_site_and_tokenless_posts_are_refused(console):
    server, _ = console
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        cookie, token = form_token(client.get("/login"))
        jar = {"Cookie": f"nl_studio_csrf={cookie}"}
        path = f"/issues/{this_week()}/approve"
        cross = [
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ]
        for headers in cross:
            refused = client.post(path, data={"csrf": token}, headers=jar | bearer | headers)
            assert refused.status_code == 403 and "another site" in refused.text, headers
        login = client.post(
            "/login",
            data={"name": "ada", "password": PASSWORD, "csrf": "1.x"},
            headers=jar | {"accept": "text/html"},
        )
        assert login.status_code == 403 and "expired" in login.text, "the login form needs its token too"
    with Session(make_engine(database_url(server.directory))) as store:
        assert not store.exec(select(EditorEvent).where(EditorEvent.action == "approve")).all()
