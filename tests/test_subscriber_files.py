"""Importing and exporting the list as CSV, through the real command."""

from __future__ import annotations

import csv
import io

from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Subscriber
from tests.databases import database_url
from tests.test_cli import run


def readers(tmp_path) -> dict[str, str]:
    with Session(make_engine(database_url(tmp_path))) as session:
        return {s.email: s.status for s in session.exec(select(Subscriber))}


def test_a_valid_file_adds_active_readers_and_merges_duplicates(tmp_path):
    run(tmp_path, "init")
    path = tmp_path / "list.csv"
    path.write_text(
        "\ufeffName,EMAIL,Company\nAda,ada@example.com,A\nAda again,ADA@Example.com,A\n,bob@example.com,\n\n"
    )
    result = run(tmp_path, "subscribers", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert "2 added as active" in result.stdout and "1 duplicate row(s) merged" in result.stdout
    assert readers(tmp_path) == {"ada@example.com": "active", "bob@example.com": "active"}
    again = run(tmp_path, "subscribers", "import", str(path))
    assert "0 added as active" in again.stdout and "2 already on the list" in again.stdout


def test_invalid_rows_are_reported_with_line_numbers_and_nothing_is_stored(tmp_path):
    run(tmp_path, "init")
    path = tmp_path / "list.csv"
    path.write_text("email\ngood@example.com\nnot-an-address\nalso@good.example.com\nbad@@example.com\n")
    result = run(tmp_path, "subscribers", "import", str(path))
    assert result.returncode == 1
    assert "nothing was stored" in result.stderr
    assert "line 3:" in result.stderr and "line 5:" in result.stderr and "line 2" not in result.stderr
    assert readers(tmp_path) == {}

    skipped = run(tmp_path, "subscribers", "import", "--skip-invalid", str(path))
    assert skipped.returncode == 0 and "2 invalid row(s) skipped" in skipped.stdout
    assert set(readers(tmp_path)) == {"good@example.com", "also@good.example.com"}


def test_a_file_without_an_email_column_is_refused(tmp_path):
    run(tmp_path, "init")
    path = tmp_path / "list.csv"
    path.write_text("name,address\nAda,ada@example.com\n")
    result = run(tmp_path, "subscribers", "import", str(path))
    assert result.returncode == 1 and "no 'email' column" in result.stderr


def test_readers_who_left_are_not_reactivated_and_pending_ones_are_vouched_for(tmp_path):
    run(tmp_path, "init")
    with Session(make_engine(database_url(tmp_path))) as session:
        session.add(Subscriber(email="gone@example.com", status="unsubscribed"))
        session.add(Subscriber(email="bounced@example.com", status="bounced"))
        session.add(Subscriber(email="waiting@example.com", status="pending"))
        session.commit()
    path = tmp_path / "list.csv"
    path.write_text("email\ngone@example.com\nbounced@example.com\nwaiting@example.com\n")
    result = run(tmp_path, "subscribers", "import", str(path))
    assert result.returncode == 0
    assert "2 left earlier and were not reactivated" in result.stdout
    assert readers(tmp_path) == {
        "gone@example.com": "unsubscribed",
        "bounced@example.com": "bounced",
        "waiting@example.com": "active",
    }


def test_confirm_adds_pending_readers_and_emails_each_a_confirmation_once(tmp_path):
    run(tmp_path, "init")
    path = tmp_path / "list.csv"
    path.write_text("email\nc1@example.com\nc2@example.com\nc3@example.com\n")
    result = run(tmp_path, "subscribers", "import", "--confirm", str(path))
    assert result.returncode == 0 and "Sent 3 confirmation email(s)" in result.stdout
    assert set(readers(tmp_path).values()) == {"pending"}
    assert len(list((tmp_path / "outbox" / "confirm").glob("*.eml"))) == 3
    again = run(tmp_path, "subscribers", "import", "--confirm", str(path))
    assert again.returncode == 0 and "Sent" not in again.stdout
    assert len(list((tmp_path / "outbox" / "confirm").glob("*.eml"))) == 3


def test_export_writes_email_status_and_subscribed_at(tmp_path):
    run(tmp_path, "init")
    run(tmp_path, "subscribers", "add", "ada@example.com", "bob@example.com")
    result = run(tmp_path, "subscribers", "export")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["email"] for r in rows] == ["ada@example.com", "bob@example.com"]
    assert {r["status"] for r in rows} == {"active"}
    assert all(r["subscribed_at"].startswith("20") for r in rows)
    out = tmp_path / "export.csv"
    assert run(tmp_path, "subscribers", "export", "--out", str(out)).returncode == 0
    assert out.read_text().splitlines()[0].startswith("email,status,subscribed_at")
    stats = run(tmp_path, "subscribers", "stats")
    assert "active" in stats.stdout and "2" in stats.stdout
