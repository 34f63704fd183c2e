"""The store opened through its driver alone (sqlite3, or psycopg for PostgreSQL), for a command
that only reads and must start at once.

`newsletter issue show` is run by hand, often; importing SQLAlchemy took ~150 ms of its start-up
(issue 16: under 300 ms). The reads themselves are one copy of SQL text with `:name` parameters
(newsletter/issue_reads.py), which this reader and SQLAlchemy's `text()` both run. Reads happen in
one read-only transaction: a consistent snapshot, and on SQLite no write lock taken.
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from newsletter.store_urls import SQLITE_BUSY_TIMEOUT_MS, parse_url, sqlite_path

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # a `:name` parameter, not a `::cast`


class StoreUnreachable(RuntimeError):
    """The store cannot be opened (SQLite) or reached (PostgreSQL); `detail` is the driver's first
    line, which names host and user at most, never the password."""

    def __init__(self, verb: str, detail: str) -> None:
        super().__init__(f"cannot {verb} the store: {detail}")
        self.verb = verb
        self.detail = detail


class PlainReader:
    """Runs `:name`-parameter SQL on one DB-API connection; rows are named tuples."""

    def __init__(self, connection: Any, backend: str) -> None:
        self.connection = connection
        self.backend = backend

    def plain_rows(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        if self.backend != "sqlite":  # psycopg's parameters are %(name)s
            sql = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
        try:
            cursor = self.connection.execute(sql, dict(params))
            return cursor.fetchall()
        except _driver_errors(self.backend) as exc:
            raise StoreUnreachable("read", first_line(exc)) from exc

    def has_table(self, name: str) -> bool:
        if self.backend == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"
        else:
            sql = (
                "SELECT 1 FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = :name"
            )
        return bool(self.plain_rows(sql, {"name": name}))


@contextmanager
def open_plain(url: str) -> Iterator[PlainReader]:
    """A reader on the store at `url` (an accepted URL: newsletter.store_urls), in one read-only
    transaction that ends with the block. A SQLite file that is not there is never created."""
    path = sqlite_path(url)
    if path is None:
        connection = _connect_postgresql(url)
        reader = PlainReader(connection, "postgresql")
    else:
        try:
            connection = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=rw",
                uri=True,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # transactions as this module begins them
            )
        except sqlite3.Error as exc:
            raise StoreUnreachable("open", first_line(exc)) from exc
        connection.row_factory = _named_row
        reader = PlainReader(connection, "sqlite")
    try:
        if reader.backend == "sqlite":
            reader.plain_rows("PRAGMA query_only = ON", {})
            reader.plain_rows("BEGIN", {})  # deferred: a snapshot from the first read, no write lock
        yield reader
    finally:
        try:
            connection.rollback()
        finally:
            connection.close()


def _connect_postgresql(url: str) -> Any:
    import psycopg
    from psycopg.rows import namedtuple_row

    parsed = parse_url(url)
    arguments = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    arguments = {key: value for key, value in arguments.items() if value is not None}
    for key, values in parsed.query.items():  # libpq's own options (sslmode=, host= for a socket)
        arguments[key] = values[-1]
    try:
        connection = psycopg.connect(**arguments, row_factory=namedtuple_row)
    except psycopg.Error as exc:
        raise StoreUnreachable("reach", first_line(exc)) from exc
    connection.read_only = True  # its first read begins a READ ONLY transaction
    return connection


def _driver_errors(backend: str) -> type[Exception] | tuple[type[Exception], ...]:
    if backend == "sqlite":
        return sqlite3.DatabaseError  # "file is not a database" too
    import psycopg

    return psycopg.OperationalError


def _named_row(cursor: sqlite3.Cursor, row: tuple) -> Any:
    return _row_class(tuple(column[0] for column in cursor.description))(*row)


@lru_cache(maxsize=64)
def _row_class(names: tuple[str, ...]) -> type:
    return namedtuple("Row", names, rename=True)


def first_line(exc: BaseException) -> str:
    """The first line of a driver's message (its type's name if it has none): what a refusal quotes."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
