"""Engine and sessions. SQLite (the embedded default) runs in WAL mode with foreign keys on; any other
SQLAlchemy URL is passed through as given."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from newsletter import models  # noqa: F401  (registers the tables on SQLModel.metadata)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def make_engine(url: str) -> Engine:
    """An engine for `url`; for a SQLite file, the parent directory is created and WAL turned on."""
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        gate = _WriterGate()
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", gate.enter)
        event.listen(engine, "commit", gate.leave)
        event.listen(engine, "rollback", gate.leave)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _sqlite_begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


class _WriterGate:
    """Transactions on one SQLite file take turns: first in this process, then in the database.

    BEGIN IMMEDIATE takes the write lock at the start, so two writers never fail mid-way with
    'database is locked' when a read tries to upgrade. Within a process, threads queue on a lock
    first: SQLite's own busy handler makes waiters sleep with a growing back-off, which under a
    burst of signups turned a 2 ms transaction into a second of waiting at the tail. Other processes
    (the scheduler, a second web worker) still wait on SQLite's lock and busy_timeout.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def enter(self, connection) -> None:
        held = self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        connection.info["writer_gate"] = held
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.leave(connection)
            raise

    def leave(self, connection) -> None:
        if connection.info.pop("writer_gate", False):
            self._lock.release()


def create_schema(engine: Engine) -> None:
    """Create the store, or upgrade it to the newest schema; safe to run on an existing store."""
    from newsletter.schema import upgrade  # Alembic loads only where a schema is made

    upgrade(engine)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error, so a failed run stores nothing."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
