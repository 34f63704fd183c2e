"""Engines for the store's URL, with SQLAlchemy Core alone. SQLite (the embedded default) runs in WAL
mode with foreign keys on; PostgreSQL through psycopg is the way to grow. No other database is
accepted: `parse_database_url` says why.

Apart from `newsletter.db` (sessions, which need the ORM and the table models) so that reading the
settings or opening a store for a quick read (`newsletter issue show`) never loads the ORM, SQLModel
or the 25 table models: a third of the CPU and 12 MB of `newsletter issue show` (issue 16).
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from newsletter.locations import file_problem

SQLITE_BUSY_TIMEOUT_MS = 30_000
EXPECTED_URL = "sqlite:///path/to/store.db or postgresql+psycopg://user:password@host:5432/database"
# The drivers the product ships with; plain `postgresql://` means psycopg (3), whatever SQLAlchemy's
# default driver for it is in the installed release.
DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def parse_database_url(text: str) -> str:
    """`text` as the store's URL in its one spelling, or ValueError saying what is wrong.

    The message never repeats the URL: it may hold a password.
    """
    try:
        url = make_url(text.strip())
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ValueError(f"not a database URL; expected {EXPECTED_URL}") from None
    driver = DRIVERS.get(url.drivername.lower())
    if driver is None:
        backend = url.drivername.lower()
        hint = " (spell it postgresql+psycopg://)" if backend.split("+")[0] == "postgres" else ""
        raise ValueError(f"the database {backend!r} is not supported{hint}; expected {EXPECTED_URL}")
    if driver == "sqlite":
        return _sqlite_url(url.set(drivername="sqlite"))
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"the port {url.port} is out of range (1-65535); expected {EXPECTED_URL}")
    return url.set(drivername=driver).render_as_string(hide_password=False)


def _sqlite_url(url) -> str:
    if url.query:
        raise ValueError(f"a SQLite URL takes no ?options; expected {EXPECTED_URL}")
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ValueError(f"an in-memory SQLite store vanishes when the command ends; expected {EXPECTED_URL}")
    if url.host or url.username or url.password or url.port:
        raise ValueError(f"a SQLite URL has three slashes and a file path; expected {EXPECTED_URL}")
    return f"sqlite:///{Path(database).expanduser()}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def shown_url(url: str) -> str:
    """The URL to show in a message or a log line: its password, if any, masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(the database URL)"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def sqlite_location_problem(path: Path) -> str | None:
    """Why a SQLite store cannot live at `path`, or None (see newsletter.locations: the store file is
    created, never the directories above it)."""
    return file_problem(path, "store file")


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite, WAL mode. Creates nothing on its own: opening a SQLite file
    that is not there makes an empty one, so callers that only read check `sqlite_path` first."""
    if is_sqlite(url):
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
