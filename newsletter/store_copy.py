"""`newsletter db copy --to URL`: move a store (say, the SQLite file) into another database (say,
PostgreSQL), checked by counts.

The copy is one transaction on the target: it completes, with every table's count equal to the
source's, or the target is left as it was. Rows stream in chunks, so a store of millions of readers
copies in constant memory. The target must be empty; the schema there is made by the migrations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, func, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from newsletter import schema
from newsletter.rollups import KEPT_FIGURES

CHUNK_ROWS = 5_000


class CopyError(RuntimeError):
    """The copy was refused or did not check out; the target is unchanged."""


@dataclass
class TableCount:
    table: str
    source: int
    target: int


def copy_store(
    source: Engine,
    target: Engine,
    *,
    chunk: int = CHUNK_ROWS,
    on_table: Callable[[str, int], None] | None = None,
) -> list[TableCount]:
    """Copy every table of `source` into the empty store `target`; returns the per-table counts."""
    head = schema.head()
    if schema.current(source) != head:
        raise CopyError(
            f"the source store is not at revision {head}; run `newsletter db upgrade` on it first"
        )
    schema.upgrade(target)
    # Parents before children: foreign keys hold throughout. Kept figures are not copied: the
    # target's triggers would drop them as the rows they count arrive, and its pages count them again.
    tables = [table for table in SQLModel.metadata.sorted_tables if table.name not in KEPT_FIGURES]
    counts: list[TableCount] = []
    with source.connect() as reader, target.begin() as writer:
        for table in tables:
            if writer.execute(select(func.count()).select_from(table)).scalar():
                raise CopyError(
                    f"the target store is not empty (table {table.name} has rows); nothing copied"
                )
        for table in tables:
            copied = 0
            result = reader.execution_options(stream_results=True, yield_per=chunk).execute(
                select(table).order_by(*table.primary_key.columns)
            )
            for rows in result.mappings().partitions(chunk):
                writer.execute(insert(table), [dict(row) for row in rows])
                copied += len(rows)
            expected = reader.execute(select(func.count()).select_from(table)).scalar() or 0
            found = writer.execute(select(func.count()).select_from(table)).scalar() or 0
            counts.append(TableCount(table.name, expected, found))
            if on_table:
                on_table(table.name, found)
            if expected != found or copied != found:
                raise CopyError(
                    f"table {table.name}: {expected} rows in the source, {found} in the target; "
                    "nothing copied (the target was rolled back)"
                )
        _advance_sequences(writer)
    return counts


def _advance_sequences(connection: Connection) -> None:
    """Explicit ids were inserted: PostgreSQL's sequences must move past them, or the next insert
    collides. (SQLite takes the next rowid from the table itself.)"""
    if connection.dialect.name != "postgresql":
        return
    for table in SQLModel.metadata.sorted_tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                top = connection.execute(select(func.max(column))).scalar() or 0
                connection.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, :column), :next, false)"),
                    {"table": f'"{table.name}"', "column": column.name, "next": top + 1},
                )
