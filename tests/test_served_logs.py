"""What a real `newsletter serve` writes: no reader token in any line (access log, error log, our own
loggers, a traceback), and the port it really bound with `--port 0`."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import httpx
from sqlalchemy import text
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Subscriber
from newsletter.tokens import Signer
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.served import launched
from tests.web_server import Server, server_env

SIGNER = Signer(TEST_KEY.encode())


def test_no_reader_token_reaches_the_log_not_even_from_a_404_or_a_500(tmp_path):
    server = Server(url="", directory=tmp_path, env=server_env(tmp_path))
    assert server.cli("init", "--sample").returncode == 0
    assert server.cli("subscribers", "add", "logged@example.com").returncode == 0
    engine = make_engine(database_url(tmp_path))
    with Session(engine) as session:
        reader = session.exec(select(Subscriber.id).where(Subscriber.email == "logged@example.com")).one()
    expires = int(time.time()) + 3600
    token, confirm = SIGNER.sign("reader", reader, expires), SIGNER.sign("confirm", reader, expires)
    stay = SIGNER.sign("stay", reader, expires)
    escaped = "".join(f"%{ord(c):02X}" if c.isalpha() else c for c in token)  # the app decodes it

    with launched(server, "serve") as process, httpx.Client(base_url=process.url, timeout=10) as client:
        answers = {
            path: client.get(path).status_code
            for path in (
                f"/preferences/{token}",
                f"/preferences/{escaped}",
                f"/unsubscribe/{token}",
                f"/preferences/{token}/export",
                f"/vote/{token}/cursor-vs-windsurf/windsurf/ship",
                f"/confirm/{confirm}",
                f"/stay/{stay}",
                f"/r/{token}",  # a reader token alone is no tracked link: 400
                f"/preferences/{token}/nothing-here",
                f"/issues?next=/preferences/{token}&t={token}",
                f"/compare/{token}",
            )
        }
        assert answers[f"/preferences/{token}"] == answers[f"/preferences/{escaped}"] == 200
        assert answers[f"/r/{token}"] == 400 and answers[f"/preferences/{token}/nothing-here"] == 404
        # A 500: the store loses a table under the running app.
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE subscriber RENAME TO subscriber_gone"))
        # (uvicorn closes a connection after a 500: each of these on its own)
        assert httpx.get(f"{process.url}/preferences/{token}").status_code == 500
        assert httpx.post(f"{process.url}/unsubscribe/{token}").status_code == 500
    engine.dispose()
    log = process.log()

    assert "unexpected error on GET /preferences/<token>" in log, log[-3000:]
    assert "Traceback" in log and "Exception in ASGI application" in log, "the 500 was logged in full"
    assert re.search(r'"GET /r/<token> HTTP/1.1" 400', log) and re.search(r'"GET /confirm/<token> HTTP', log)
    assert re.search(r'"GET /stay/<token> HTTP/1.1" 200', log)
    for secret in (token, confirm, stay, escaped, token.rsplit(".", 1)[1], confirm.rsplit(".", 1)[1]):
        assert secret not in log, f"{secret} is in the log:\n{log[-3000:]}"


def test_port_0_binds_a_free_port_and_says_which(tmp_path):
    server = Server(url="", directory=tmp_path, env=server_env(tmp_path))
    assert server.cli("init").returncode == 0
    with launched(server, "serve") as web, launched(server, "preview", name="preview") as studio:
        for process in (web, studio):
            port = int(process.url.rsplit(":", 1)[1])
            assert port > 0 and httpx.get(f"{process.url}/healthz").status_code == 200
        assert web.url != studio.url
    assert "port 0" not in web.log() + studio.log() and ":0/" not in web.log() + studio.log()


UNREACHABLE_SMTP = {"NEWSLETTER_PROVIDER": "smtp", "NEWSLETTER_SMTP_URL": "smtp://user:pw-S3cret@127.0.0.1:1"}


def test_a_provider_that_cannot_be_reached_is_one_error_line_in_the_log_never_a_traceback(tmp_path):
    """An expected provider failure (a closed SMTP port) while `serve` sends a confirmation and while
    `preview` sends a test: the page answers, the log says why in one line, no traceback."""
    server = Server(url="", directory=tmp_path, env=server_env(tmp_path))
    assert server.cli("init", "--sample").returncode == 0
    server.env = server.env | UNREACHABLE_SMTP
    with launched(server, "serve") as web, httpx.Client(base_url=web.url, timeout=10) as client:
        assert client.post("/api/subscribe", json={"email": "new@example.com"}).status_code == 202
        deadline = time.monotonic() + 10
        while "could not" not in web.log() and "failed" not in web.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    with launched(server, "preview", name="preview") as studio, httpx.Client(base_url=studio.url) as client:
        week = re.search(r'href="/issues/(\d{4}-W\d\d)"', client.get("/issues").text)[1]
        page = client.get(f"/issues/{week}")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        answer = client.post(f"/issues/{week}/test", data={"email": "editor@example.com", "csrf": token})
        assert answer.status_code == 422 and "The provider refused the test" in answer.text
    for process, expected in (
        (web, "the confirm email to subscriber 1 failed: smtp: cannot connect to 127.0.0.1:1"),
        (studio, f"the test send of {week} failed: smtp: cannot connect to 127.0.0.1:1"),
    ):
        log = process.log()
        assert expected in log, log[-3000:]
        assert "Traceback" not in log and "pw-S3cret" not in log, log[-3000:]
        assert sum("ERROR" in line for line in log.splitlines()) == 1, log[-3000:]


def test_the_emulator_on_port_0_announces_the_port_it_bound(tmp_path):
    popen = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "emulator", "--port", "0"],
        cwd=tmp_path,
        env=server_env(tmp_path) | {"PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = popen.stdout.readline() + popen.stdout.readline()
        port = int(re.search(r"NEWSLETTER_API_BASE_URL=http://127\.0\.0\.1:(\d+)", banner)[1])
        assert port > 0 and f"on http://127.0.0.1:{port} " in banner, banner
        assert httpx.get(f"http://127.0.0.1:{port}/_emulator/counts").status_code == 200
    finally:
        popen.terminate()
        popen.wait(timeout=10)


SERVERS = (("serve",), ("preview",), ("emulator",))


def test_a_port_in_use_or_out_of_range_is_one_line_and_no_banner(tmp_path):
    server = Server(url="", directory=tmp_path, env=server_env(tmp_path))
    assert server.cli("init").returncode == 0
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for words in SERVERS:
            result = server.cli(*words, "--port", str(port))
            text = result.stdout + result.stderr
            assert result.returncode == 1, (words, text)
            assert [line for line in text.splitlines() if line.strip()] == [result.stderr.strip()], text
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr, text
    for words in SERVERS:
        for port in ("-1", "65536"):
            result = server.cli(*words, "--port", port)
            assert result.returncode == 2 and "--port" in result.stderr, (words, result.stderr)
            assert "Traceback" not in result.stderr and not result.stdout.strip()
    result = server.cli("serve", "--host", "no such host", "--port", "0")
    assert result.returncode == 1 and "cannot listen on no such host:0" in result.stderr, result.stderr
