"""Engines for the store's URL (`newsletter.store_urls`), with SQLAlchemy Core alone. SQLite (the
embedded default) runs in WAL mode with foreign keys on; PostgreSQL through psycopg is the way to grow.

Apart from `newsletter.db` (sessions, which need the ORM and the table models) so that reading the
settings or opening a store for a quick read (`newsletter issue show`) never loads the ORM, SQLModel
or the 25 table models: a third of the CPU and 12 MB of `newsletter issue show` (issue 16).
"""

from __future__ import annotations

import threading

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from newsletter.store_urls import SQLITE_BUSY_TIMEOUT_MS, is_sqlite


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
