"""The `newsletter` command, run for real in a subprocess in an empty directory."""

from __future__ import annotations

import email
import json
import subprocess
import sys
from email import policy

import pytest

from tests.commands import run
from tests.conftest import seed_dict
from tests.databases import clean_env, store_exists


def test_demo_runs_the_whole_loop_in_an_empty_directory_and_a_rerun_sends_nobody_twice(tmp_path):
    first = run(tmp_path, "demo")
    assert first.returncode == 0, first.stderr
    assert store_exists(tmp_path)
    assert (tmp_path / ".newsletter-secret").is_file()
    files = sorted((tmp_path / "outbox").glob("*/*.eml"))
    assert len(files) == 4
    assert "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite" in first.stdout
    assert "sent 4" in first.stdout
    assert (tmp_path / "render").is_dir() and "issue.html" in first.stdout
    recipients = {email.message_from_bytes(f.read_bytes(), policy=policy.default)["To"] for f in files}
    assert recipients == {"ada@example.com", "grace@example.com", "linus@example.com", "margaret@example.com"}

    second = run(tmp_path, "demo")
    assert second.returncode == 0, second.stderr
    assert "nothing to send; 4 reader(s) already have it" in second.stdout
    assert len(list((tmp_path / "outbox").glob("*/*.eml"))) == 4


def test_import_of_a_bad_file_exits_non_zero_naming_file_place_and_reason_and_stores_nothing(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    good = tmp_path / "good.json"
    good.write_text(json.dumps(seed_dict()))
    document = seed_dict()
    document["slug"] = "other"
    document["reviews"][5]["verdict"] = "perhaps"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))

    result = run(tmp_path, "import", str(good), str(bad))
    assert result.returncode == 1
    assert "nothing was stored" in result.stderr
    assert (
        "bad.json" in result.stderr and "reviews[5].verdict" in result.stderr and "'perhaps'" in result.stderr
    )
    assert "Traceback" not in result.stderr
    listing = run(tmp_path, "comparisons", "list", "--all")
    assert "No comparisons." in listing.stdout

    ok = run(tmp_path, "import", str(good))
    assert ok.returncode == 0 and "1 new" in ok.stdout
    again = run(tmp_path, "import", str(good))
    assert again.returncode == 0 and "0 new, 1 updated" in again.stdout


def test_an_empty_week_says_so_and_exits_non_zero(tmp_path):
    run(tmp_path, "init", "--sample")
    result = run(tmp_path, "issue", "compose", "--week", "2020-W10")
    assert result.returncode == 1
    assert "Nothing to compose for 2020-W10" in result.stdout


def test_compose_show_edit_render_and_send_for_this_week(tmp_path):
    assert run(tmp_path, "init", "--sample").returncode == 0
    assert (
        run(
            tmp_path, "subscribers", "add", "ada@example.com", "ADA@example.com", "bob@example.com"
        ).returncode
        == 0
    )
    composed = run(tmp_path, "issue", "compose")
    assert composed.returncode == 0 and "created as a draft with 3 comparison(s)" in composed.stdout
    edited = run(tmp_path, "issue", "edit", "--subject", "Three verdicts, one week")
    assert edited.returncode == 0 and "Three verdicts, one week" in edited.stdout
    refused = run(tmp_path, "issue", "edit", "--subject", "bad\nsubject")
    assert refused.returncode == 1 and "single line" in refused.stderr

    out = tmp_path / "preview"
    rendered = run(tmp_path, "render", "--out", str(out))
    assert rendered.returncode == 0, rendered.stderr
    assert {p.name for p in out.iterdir()} == {"issue.html", "issue.txt", "issue.eml"}
    assert "Three verdicts, one week" in (out / "issue.eml").read_text()

    sent = run(tmp_path, "issue", "send")
    assert sent.returncode == 0 and "sent 2" in sent.stdout
    shown = run(tmp_path, "issue", "show")
    assert "sent" in shown.stdout and "Deliveries: sent 2" in shown.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"NEWSLETTER_SITE_URL": "http://verdicts.example.com"},
            "NEWSLETTER_SITE_URL: must be an absolute https:// URL",
        ),
        ({"NEWSLETTER_TIMEZONE": "Nowhere/Land"}, "NEWSLETTER_TIMEZONE: unknown time zone"),
        ({"NEWSLETTER_ENV": "production"}, "NEWSLETTER_SECRET_KEY is not set"),
    ],
    ids=["http-site", "bad-zone", "production-without-key"],
)
def test_bad_configuration_is_a_clear_error_not_a_traceback(tmp_path, env, message):
    result = run(tmp_path, "init", env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_on_a_missing_store_say_how_to_create_it(tmp_path):
    result = run(tmp_path, "issue", "send")
    assert result.returncode == 1
    assert "run `newsletter init` first" in result.stderr
    assert not store_exists(tmp_path), "a command other than init must not create a store"


def test_sending_a_week_without_an_issue_is_refused(tmp_path):
    run(tmp_path, "init")
    result = run(tmp_path, "issue", "send", "--week", "2026-W01")
    assert result.returncode == 1
    assert "there is no issue for 2026-W01" in result.stderr


def test_a_bad_week_is_refused(tmp_path):
    run(tmp_path, "init")
    result = run(tmp_path, "issue", "compose", "--week", "2027-W53")
    assert result.returncode == 1 and "2027 has no ISO week 53" in result.stderr


@pytest.mark.parametrize("command", [("issue", "show"), ("db", "upgrade"), ("db", "current")])
def test_a_database_that_cannot_be_reached_is_a_clear_error(tmp_path, command):
    unreachable = {"NEWSLETTER_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"}
    result = run(tmp_path, *command, env=unreachable)
    assert result.returncode == 1
    assert "cannot reach the store" in result.stderr and "Connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_current_on_a_missing_store_says_so_and_creates_nothing(tmp_path):
    result = run(tmp_path, "db", "current")
    assert result.returncode == 1
    assert "no store" in result.stderr and "Traceback" not in result.stderr
    assert not store_exists(tmp_path) and list(tmp_path.iterdir()) == []


def test_init_refuses_a_store_in_a_directory_that_does_not_exist_and_makes_none(tmp_path):
    store = tmp_path / "typo" / "subscribers.db"
    result = run(tmp_path, "init", env={"NEWSLETTER_DATABASE_URL": f"sqlite:///{store}"})
    assert result.returncode == 1
    assert f"NEWSLETTER_DATABASE_URL: the directory {store.parent}" in result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is made: no directory, no store, no key file"


BOOM = """
import newsletter.cli as cli

def boom(*args):  # called as main() calls the app
    raise RuntimeError("token {key} rejected by postgresql://u:{password}@db/x")

cli.app = boom
cli.main()
"""


@pytest.mark.parametrize("debug", [False, True], ids=["one-line", "debug-traceback"])
def test_an_unexpected_error_is_one_masked_line_unless_debugging(tmp_path, debug):
    """The backstop in main(), in a real process: an exception nobody foresaw (here a command that
    raises one quoting the secrets) is one line without them, and a hint; NEWSLETTER_DEBUG=1 shows it."""
    key, password = "k3y-" + "x" * 40, "pa/ss@w0rd"
    env = clean_env(tmp_path) | {
        "NEWSLETTER_SECRET_KEY": key,
        "NEWSLETTER_SMTP_URL": f"smtp://u:{password}@h",
    }
    if debug:
        env["NEWSLETTER_DEBUG"] = "1"
    script = BOOM.format(key=key, password=password)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    if debug:
        assert "Traceback" in result.stderr and "RuntimeError" in result.stderr
        return
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: unexpected RuntimeError: token *** rejected by postgresql://u:***@db/x", lines
    assert lines[1:] == ["Rerun with NEWSLETTER_DEBUG=1 to see the traceback."]
    assert key not in result.stderr and "w0rd" not in result.stderr


@pytest.mark.parametrize("inside_typer", [False, True], ids=["around-typer", "inside-a-command"])
def test_ctrl_c_exits_130_without_a_word(monkeypatch, capsys, inside_typer):
    import typer

    import newsletter.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    if inside_typer:  # a command interrupted while it works: Typer's own handling, under main()
        app = typer.Typer()
        app.command()(interrupted)
        monkeypatch.setattr(sys, "argv", ["newsletter"])
        monkeypatch.setattr(cli, "app", app)
    else:
        monkeypatch.setattr(cli, "app", lambda *args: interrupted())
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130
    assert capsys.readouterr() == ("", "")


def test_ctrl_c_stops_a_real_emulator_quietly(tmp_path):
    """SIGINT to a real command that is working (an emulator waiting for requests): its own clean
    stop or exit 130, never a traceback."""
    import signal
    import time

    from tests.web_server import free_port

    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "emulator", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while "Emulating" not in (line := process.stdout.readline()) and time.monotonic() < deadline:
        assert line, process.stderr.read()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode in (0, 130) and "Traceback" not in stderr, stderr


def test_the_emulator_on_a_port_in_use_says_so_in_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path, "emulator", "--port", str(port))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: ") and "in use" in line, line
