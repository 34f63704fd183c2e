"""Which database the suite runs on: SQLite files (the default) or a real PostgreSQL server.

`NEWSLETTER_TEST_DATABASE` unset or `sqlite`: every test directory gets its own SQLite file.
Set to a PostgreSQL URL (`postgresql+psycopg://postgres@127.0.0.1:5432/postgres`): every test
directory gets its own fresh database on that server, dropped when the test ends. A server that
cannot be reached fails the test; nothing is skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TARGET = os.environ.get("NEWSLETTER_TEST_DATABASE", "sqlite").strip() or "sqlite"
ON_POSTGRES = TARGET != "sqlite"
_created: list[str] = []
# A test's commits do not wait for the WAL to reach the disk (0.3 instead of 1.2 ms each here): what
# a commit makes visible is the same, only a crash of the server itself could lose the last ones,
# and no test crashes the server. Set on each test database, so the `newsletter` processes that
# tests start get it too.
NO_FLUSH_WAIT = 'ALTER DATABASE "{name}" SET synchronous_commit = off'
_admin = None


def _admin_engine():
    global _admin
    if _admin is None:
        _admin = create_engine(TARGET, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=0)
    return _admin


def database_url(directory: Path) -> str:
    """The store of a test directory: its SQLite file, or its own PostgreSQL database."""
    if not ON_POSTGRES:
        return f"sqlite:///{directory / 'subscribers.db'}"
    name = _name(directory)
    if name not in _created:
        _fresh_database(name, "template0")
        _created.append(name)
    return _url(name)


def _fresh_database(name: str, template: str) -> None:
    """(Re)create the PostgreSQL database `name` as a copy of `template`."""
    try:
        with _admin_engine().connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            connection.execute(text(NO_FLUSH_WAIT.format(name=name)))
    except Exception as exc:  # a test that cannot reach PostgreSQL fails, loudly
        pytest.fail(f"PostgreSQL at {TARGET} is not reachable: {exc}")


def _url(name: str) -> str:
    return make_url(TARGET).set(database=name).render_as_string(hide_password=False)


_templates: dict[str, str] = {}  # this process's store with the newest schema: SQLite file / database


def store_url(directory: Path) -> str:
    """Like `database_url`, but the store already has the newest schema: a copy of one that
    `create_schema` made once in this process (the SQLite file copied; on PostgreSQL a database
    made with it as the template), instead of building the schema again for every test (about
    0.1 s on SQLite and over a second on PostgreSQL, most of the PostgreSQL pass's time).
    tests/test_migrations.py keeps checking that the migrations build this same schema."""
    template = _template()
    if not ON_POSTGRES:
        shutil.copyfile(template, directory / "subscribers.db")
        return database_url(directory)
    name = _name(directory)
    _fresh_database(name, template)
    if name not in _created:
        _created.append(name)
    return _url(name)


def _template() -> str:
    if "store" in _templates:
        return _templates["store"]
    from newsletter.db import create_schema, make_engine

    if ON_POSTGRES:
        name = f"nt_template_{os.getpid()}"
        _fresh_database(name, "template0")
        url = _url(name)
    else:
        name = str(Path(tempfile.mkdtemp(prefix="newsletter-template-")) / "subscribers.db")
        url = f"sqlite:///{name}"
    engine = make_engine(url)
    try:
        create_schema(engine)
    finally:
        engine.dispose()  # a template database takes no connection while it is copied
    _templates["store"] = name
    return name


def drop_templates() -> None:
    """At the end of the session: this process's template store."""
    name = _templates.pop("store", None)
    if name is None:
        return
    if not ON_POSTGRES:
        shutil.rmtree(Path(name).parent, ignore_errors=True)
        return
    with _admin_engine().connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _name(directory: Path) -> str:
    return "nt_" + hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:20]  # noqa: S324


def created_count() -> int:
    return len(_created)


def drop_created(since: int = 0) -> None:
    """Drop the databases made since `since` databases existed (a test's own; at the end of the
    session, all). Processes still connected to them are cut off."""
    if len(_created) <= since:
        return
    with _admin_engine().connect() as connection:
        while len(_created) > since:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{_created.pop()}" WITH (FORCE)'))


def clean_env(directory: Path) -> dict[str, str]:
    """The environment for a `newsletter` process in `directory`: no NEWSLETTER_ setting of the
    developer's leaks in, and the store is the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_DATABASE_URL"] = database_url(directory)
    return env


def store_exists(directory: Path) -> bool:
    """Whether anything created a store for `directory` (without creating one by looking)."""
    if not ON_POSTGRES:
        return (directory / "subscribers.db").exists()
    engine = create_engine(database_url(directory))
    try:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
                ).scalar()
            )
    finally:
        engine.dispose()
