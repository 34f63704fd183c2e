"""Schema changes are Alembic migrations: they build exactly the models' schema on SQLite and
PostgreSQL, and a store from an earlier release upgrades in place with its data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import Session, select

from newsletter import schema
from newsletter.db import make_engine
from newsletter.models import Delivery, Issue, IssueStatus, Subscriber
from tests.commands import run
from tests.conftest import FIXTURES, TEST_KEY
from tests.databases import clean_env, database_url

OLD_STORE = FIXTURES / "store-before-migrations.db"  # made by the release before migrations existed


def differences(engine) -> list:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": schema.include_object, "compare_type": True}
        )
        return compare_metadata(context, schema.metadata())


def test_the_migrations_build_exactly_the_models_schema(settings):
    engine = make_engine(settings.database_url)
    schema.upgrade(engine, schema.BASELINE)  # step by step, as an old store would go
    schema.upgrade(engine, "head")
    assert schema.current(engine) == schema.head()
    assert differences(engine) == []
    engine.dispose()


def test_the_revisions_every_command_checks_are_alembics_own(settings):
    """Commands read the migration files' revisions without loading Alembic: the same as Alembic reads."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(schema.alembic_config())
    assert schema.revisions() == {
        script.revision: tuple(script._all_down_revisions) for script in scripts.walk_revisions()
    }
    assert schema.head() == scripts.get_current_head()
    engine = make_engine(settings.database_url)
    assert schema.current(engine) is None, "an empty store has no revision"
    schema.upgrade(engine, "0002")
    with engine.connect() as connection:
        alembics = MigrationContext.configure(connection).get_current_revision()
    assert schema.current(engine) == alembics == "0002"
    engine.dispose()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('revision = "0012"\ndown_revision = "0011"\n', {"revision": "0012", "down_revision": "0011"}),
        (  # Alembic's own template: annotated, with a union type
            'revision: str = "0012"\ndown_revision: Union[str, None] = "0011"  # the last one\n',
            {"revision": "0012", "down_revision": "0011"},
        ),
        (
            'revision = "0012"\ndown_revision = ("0010", "0011")\n',
            {"revision": "0012", "down_revision": ("0010", "0011")},
        ),
        (  # a merge whose parents span lines: read from the parsed module
            'revision = "0012"\ndown_revision = (\n    "0010",\n    "0011",\n)\n',
            {"revision": "0012", "down_revision": ("0010", "0011")},
        ),
        (  # indented or quoted in a docstring: not the module's own
            '"""Notes.\n\n    revision = "x"\n"""\nrevision = "0001"\ndown_revision = None\n',
            {"revision": "0001", "down_revision": None},
        ),
    ],
)
def test_revision_lines_read_what_the_module_assigns(source, expected):
    assert schema.revision_lines(source) == expected


def test_a_new_store_is_made_at_the_newest_revision_in_one_go(settings):
    engine = make_engine(settings.database_url)
    before, after = schema.upgrade(engine)
    assert (before, after) == (None, schema.head())
    assert differences(engine) == []
    assert schema.upgrade(engine) == (schema.head(), schema.head()), "running it again changes nothing"
    engine.dispose()


def test_a_store_at_the_baseline_upgrades_in_place_with_its_data(settings):
    engine = make_engine(settings.database_url)
    schema.upgrade(engine, schema.BASELINE)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO subscriber (id, email, status, source, created_at, updated_at) VALUES "
                "(1, 'ada@example.com', 'active', 'test', '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO issue (id, week, status, created_at, updated_at) "
                "VALUES (1, '2026-W45', 'sent', '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO delivery (id, issue_id, subscriber_id, status, attempts, created_at, "
                "updated_at) VALUES (1, 1, 1, 'sent', 1, '2026-11-01 10:00:00', '2026-11-01 10:00:00')"
            )
        )
    assert "claimed_by" not in {c["name"] for c in inspect(engine).get_columns("delivery")}

    assert schema.upgrade(engine) == (schema.BASELINE, schema.head())
    with Session(engine) as session:
        delivery = session.exec(select(Delivery)).one()
        assert (delivery.status, delivery.claimed_by, delivery.lease_until) == ("sent", None, None)
        assert session.exec(select(Subscriber.email)).one() == "ada@example.com"
    assert differences(engine) == []
    engine.dispose()


def old_store(tmp_path: Path) -> Path:
    directory = tmp_path / "old"
    directory.mkdir()
    shutil.copy(OLD_STORE, directory / "subscribers.db")
    return directory


def test_a_store_made_by_the_release_before_migrations_upgrades_with_its_data(tmp_path):
    directory = old_store(tmp_path)
    env = {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{directory / 'subscribers.db'}",
        "NEWSLETTER_SECRET_KEY": TEST_KEY,
    }

    refused = run(directory, "issue", "status", "--week", "2026-W48", env=env)
    assert refused.returncode == 1
    assert "run `newsletter db upgrade`" in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr

    upgraded = run(directory, "db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"to {schema.head()}" in upgraded.stdout

    engine = make_engine(env["NEWSLETTER_DATABASE_URL"])
    assert differences(engine) == []
    with Session(engine) as session:
        issue = session.exec(select(Issue)).one()
        assert (issue.week, issue.status) == ("2026-W48", IssueStatus.SENT)
        assert len(session.exec(select(Delivery)).all()) == 3
        assert len(session.exec(select(Subscriber)).all()) == 3
    engine.dispose()
    status = run(directory, "issue", "status", "--week", "2026-W48", env=env)
    assert status.returncode == 0 and "sent" in status.stdout
    again = run(directory, "db", "upgrade", env=env)
    assert "already at revision" in again.stdout


def test_the_old_store_moves_into_the_suites_database_with_db_copy(tmp_path):
    """On the PostgreSQL pass this is the real move: an old SQLite store, upgraded, into PostgreSQL."""
    directory = old_store(tmp_path)
    source = f"sqlite:///{directory / 'subscribers.db'}"
    env = {"NEWSLETTER_DATABASE_URL": source, "NEWSLETTER_SECRET_KEY": TEST_KEY}
    assert run(directory, "db", "upgrade", env=env).returncode == 0
    target = database_url(tmp_path / "target")
    if target.startswith("sqlite"):
        (tmp_path / "target").mkdir()
    copied = run(directory, "db", "copy", "--to", target, env=env)
    assert copied.returncode == 0, copied.stderr
    assert "every table equal" in copied.stdout

    target_env = clean_env(tmp_path / "target") | {"NEWSLETTER_SECRET_KEY": TEST_KEY}
    status = run(directory, "issue", "status", "--week", "2026-W48", env=target_env)
    assert status.returncode == 0, status.stderr
    assert "sent" in status.stdout
    added = run(directory, "subscribers", "add", "new.reader@example.com", env=target_env)
    assert added.returncode == 0, added.stderr  # the id sequences moved past the copied rows

    again = run(directory, "db", "copy", "--to", target, env=env)
    assert again.returncode == 1 and "not empty" in again.stderr, "a second copy would duplicate: refused"
    engine = make_engine(target)
    with Session(engine) as session:
        assert len(session.exec(select(Subscriber)).all()) == 4, "the refused copy changed nothing"
    engine.dispose()
