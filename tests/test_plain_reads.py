"""`newsletter issue show` reads through the driver alone (newsletter/plain_store.py), the other
commands through SQLAlchemy, both running the one copy of SQL in newsletter/issue_reads.py: the two
must read the same issue, refuse the same stores, and the plain one must never write or wait."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import compose
from newsletter.issue_reads import delivery_counts, find_issue, in_list, issue_view, rows
from newsletter.plain_store import PlainReader, StoreUnreachable, open_plain
from newsletter.samples import dated_into_week
from tests.commands import run
from tests.databases import ON_POSTGRES
from tests.web_server import free_port


@pytest.fixture
def week(settings, engine, samples) -> Week:
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples[:3], now, settings.zone), settings.zone)
        compose(session, Week.containing(now, settings.zone), settings)
    return Week.containing(now, settings.zone)


def test_the_plain_reader_and_a_session_read_the_same_issue(settings, engine, week):
    with session_scope(engine) as session:
        issue = find_issue(session, week)
        through_orm = (issue_view(session, issue, settings), delivery_counts(session, issue.id))
    with open_plain(settings.database_url) as reader:
        plain_issue = find_issue(reader, week)
        through_driver = (issue_view(reader, plain_issue, settings), delivery_counts(reader, plain_issue.id))
    assert tuple(plain_issue) == tuple(issue)
    assert through_driver == through_orm
    assert len(through_driver[0].comparisons) == 3 and through_driver[0].comparisons[0].left.reviews


def test_parameters_in_lists_casts_and_percent_signs_reach_either_driver_intact(settings, engine, week):
    ids, params = in_list("n", [3, 1, 2])
    sql = f"SELECT COUNT(*) AS n, '5%' AS sign FROM issue WHERE 1 IN {ids} AND :word = 'w'"  # noqa: S608
    if ON_POSTGRES:
        sql = sql.replace("'5%' AS sign", "'5%'::text AS sign")
    with open_plain(settings.database_url) as reader:
        plain = rows(reader, sql, params | {"word": "w"})
    with engine.connect() as connection:
        assert [tuple(r) for r in rows(connection, sql, params | {"word": "w"})] == [tuple(r) for r in plain]
    assert plain[0].n == 1 and plain[0].sign == "5%"


def test_the_plain_reader_never_writes(settings, engine, week):
    with open_plain(settings.database_url) as reader, pytest.raises(Exception) as refused:  # noqa: PT011
        reader.connection.execute("DELETE FROM issue")
    assert "read" in str(refused.value).lower() or "readonly" in str(refused.value).lower()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM issue")).scalar_one() == 1


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_issue_show_answers_while_another_process_holds_the_write_lock(tmp_path, settings, engine, week):
    holder = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE issue SET subject_override = 'Being edited'")
    try:
        started = time.perf_counter()
        shown = run(
            tmp_path,
            "issue",
            "show",
            "--week",
            week.label,
            env={"NEWSLETTER_DATABASE_URL": settings.database_url},
        )
        waited = time.perf_counter() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert shown.returncode == 0, shown.stderr
    assert "Being edited" not in shown.stdout  # the last committed state, not the open transaction
    assert waited < 20  # SQLite's busy timeout is 30 s: a lock taken would have waited it out


def test_issue_show_refuses_a_store_behind_or_ahead_of_this_release(tmp_path, settings, engine, week):
    env = {"NEWSLETTER_DATABASE_URL": settings.database_url}
    for revision, expected in (("0012", "run `newsletter db upgrade`"), ("9999", "a newer release made it")):
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
        refused = run(tmp_path, "issue", "show", "--week", week.label, env=env)
        assert refused.returncode == 1, refused.stdout
        assert expected in " ".join(refused.stderr.split())
        assert "Traceback" not in refused.stderr
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))
    refused = run(tmp_path, "issue", "show", "--week", week.label, env=env)
    assert "from before migrations" in " ".join(refused.stderr.split())


def test_issue_show_on_a_server_that_is_not_there_says_so_in_one_line_without_the_password(tmp_path):
    url = f"postgresql+psycopg://editor:s3cret-pw@127.0.0.1:{free_port()}/news"
    refused = run(tmp_path, "issue", "show", env={"NEWSLETTER_DATABASE_URL": url})
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the store at"), refused.stderr
    assert "s3cret-pw" not in refused.stderr and "***" in refused.stderr


def test_issue_show_on_a_file_that_is_not_a_store_refuses_and_leaves_it_alone(tmp_path):
    store = tmp_path / "notes.db"
    store.write_bytes(b"these are my notes, not a database" * 200)
    before = store.read_bytes()
    refused = run(tmp_path, "issue", "show", env={"NEWSLETTER_DATABASE_URL": f"sqlite:///{store}"})
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("error: cannot ") and "notes.db" in refused.stderr
    assert store.read_bytes() == before


def test_open_plain_never_creates_a_sqlite_file(tmp_path):
    missing = tmp_path / "nowhere.db"
    with pytest.raises(StoreUnreachable), open_plain(f"sqlite:///{missing}"):
        pass
    assert not missing.exists()


def test_a_reader_names_its_rows_columns_and_never_shows_the_connection_string(tmp_path):
    store = tmp_path / "s.db"
    with sqlite3.connect(store) as connection:
        connection.execute("CREATE TABLE t (a INTEGER, b TEXT)")
        connection.execute("INSERT INTO t VALUES (1, 'x')")
    with open_plain(f"sqlite:///{store}") as reader:
        assert isinstance(reader, PlainReader)
        (row,) = reader.plain_rows("SELECT a, b, COUNT(*) FROM t", {})
        assert (row.a, row.b, row[2]) == (1, "x", 1)
        assert reader.has_table("t") and not reader.has_table("u")
