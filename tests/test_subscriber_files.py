"""Importing and exporting the list as CSV, through the real command."""

from __future__ import annotations

import csv
import io

from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Subscriber, SubscriberEvent
from tests.commands import run
from tests.conftest import FIXTURES
from tests.databases import ON_POSTGRES, database_url


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


# --- other platforms' exports, through the real command ---------------------------------------------

EXPORTS = FIXTURES / "exports"


def store_snapshot(tmp_path) -> object:
    """The SQLite file's bytes, or on PostgreSQL every reader row and the number of events."""
    if not ON_POSTGRES:
        return (tmp_path / "subscribers.db").read_bytes()
    with Session(make_engine(database_url(tmp_path))) as session:
        rows = sorted(tuple(s.model_dump().values()) for s in session.exec(select(Subscriber)))
        return rows, len(session.exec(select(SubscriberEvent.id)).all())


def test_a_substack_export_is_recognised_and_a_dry_run_stores_nothing(tmp_path):
    run(tmp_path, "init")
    run(tmp_path, "subscribers", "add", "paid.reader@example.com")
    export = EXPORTS / "substack/email_list.verdicts.csv"
    before = store_snapshot(tmp_path)
    dry = run(tmp_path, "subscribers", "import", "--dry-run", str(export))
    assert dry.returncode == 0, dry.stderr
    assert f"{export}: recognised as Substack's export (--from substack), 8 row(s)." in dry.stdout
    assert "Dry run: nothing was stored." in dry.stdout
    lines = [line.split() for line in dry.stdout.splitlines()]
    assert ["add", "as", "active:", "subscribed", "2"] in lines
    assert ["add", "as", "suppressed:", "email_disabled", "3"] in lines
    assert ["skip:", "already", "on", "the", "list:", "active", "1"] in lines
    assert ["skip:", "nothing", "to", "store:", "deletion", "request", "1"] in lines
    assert ["merge:", "duplicate", "row", "1"] in lines
    assert store_snapshot(tmp_path) == before, "a dry run changed the store"

    real = run(tmp_path, "subscribers", "import", str(export))
    assert real.returncode == 0, real.stderr
    assert "3 were stored as suppressed" in real.stdout
    assert readers(tmp_path)["emails.off@example.com"] == "suppressed"


def test_a_mailchimp_export_is_no_longer_refused_for_want_of_an_email_column(tmp_path):
    run(tmp_path, "init")
    result = run(
        tmp_path, "subscribers", "import", str(EXPORTS / "mailchimp/cleaned_members_export_6c7d8e9f0a.csv")
    )
    assert result.returncode == 0, result.stderr
    assert "recognised as Mailchimp's export (cleaned members)" in result.stdout
    assert readers(tmp_path) == {"c1@example.com": "suppressed", "c2@example.com": "suppressed"}
    exported = list(csv.DictReader(io.StringIO(run(tmp_path, "subscribers", "export").stdout)))
    assert {(r["email"], r["status_reason"], r["unsubscribed_at"][:10]) for r in exported} == {
        ("c1@example.com", "imported: mailchimp cleaned", "2020-03-23"),
        ("c2@example.com", "imported: mailchimp cleaned", "2023-05-12"),
    }


def test_confirm_emails_the_pending_and_the_subscribed_but_never_the_suppressed(tmp_path):
    run(tmp_path, "init")
    result = run(tmp_path, "subscribers", "import", "--confirm", str(EXPORTS / "beehiiv/subscribers.csv"))
    assert result.returncode == 0, result.stderr
    assert "Sent 5 confirmation email(s)" in result.stdout
    written = {
        p.read_text().split("To: ", 1)[1].split()[0] for p in (tmp_path / "outbox" / "confirm").glob("*.eml")
    }
    assert written == {
        "active@example.com",
        "premium@example.com",
        "pending@example.com",
        "validating@example.com",
        "attention@example.com",
    }


def test_bad_input_is_one_line_per_error_with_the_exit_code(tmp_path):
    run(tmp_path, "init")
    kit = (
        (EXPORTS / "kit/subscribers.csv")
        .read_text()
        .replace("inactive", "frozen")
        .replace("2022-12-01", "2022-12-41")
    )
    path = tmp_path / "kit.csv"
    path.write_text(kit)
    refused = run(tmp_path, "subscribers", "import", str(path))
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"import refused, nothing was stored: {path}: 2 invalid row(s)",
        f"  {path}: line 3: nils@example.com: state is 'frozen'; Kit writes one of active, inactive, "
        "cancelled, bounced, complained",
        f"  {path}: line 5: bounced@example.com: created_at '2022-12-41T08:00:00Z' is not a time: day is "
        "out of range for month",
        "Fix those rows, or pass --skip-invalid to import the valid ones.",
    ]
    assert "Traceback" not in refused.stderr and readers(tmp_path) == {}

    unknown = tmp_path / "contacts.csv"
    unknown.write_text("Name,E-Mail\nAda,ada@example.com\n")
    result = run(tmp_path, "subscribers", "import", str(unknown))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "expected one of: substack: email, active_subscription" in result.stderr

    wrong = run(tmp_path, "subscribers", "import", "--from", "tinyletter", str(unknown))
    assert wrong.returncode == 1 and len(wrong.stderr.splitlines()) == 1
    assert "--from 'tinyletter': not a format; choose one of auto, substack, mailchimp" in wrong.stderr
