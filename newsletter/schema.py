"""The store's schema, kept by Alembic migrations that run on SQLite and PostgreSQL alike.

A new, empty store gets the tables at once and is stamped at the newest revision (the same schema
the migrations build, which tests/test_migrations.py checks on both databases). A store from an
earlier release is upgraded in place with its data; one made before migrations existed is first
recognised as the baseline revision.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"
NOT_OURS = {"apscheduler_jobs", VERSION_TABLE}  # the scheduler's job store manages its own table
VERSION_QUERY = "SELECT version_num FROM alembic_version"  # Alembic's VERSION_TABLE
BASELINE = "0001"  # the schema of the releases before migrations: created by create_all


class SchemaError(RuntimeError):
    """The store's schema is one this release cannot work with (made by a newer release)."""


def metadata() -> MetaData:
    """Every table and index the migrations build: the models' tables with their partial indexes,
    which are declared only where a schema is made or compared (see `models.partial_indexes`).
    The models load here, not with this module: every command checks the store's revision, and
    only those that make or compare a schema need the tables."""
    from sqlmodel import SQLModel

    from newsletter import models  # registers the tables on SQLModel.metadata

    models.partial_indexes()
    return SQLModel.metadata


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """What the migrations (and the check that they match the models) look at: our tables only."""
    return not (type_ == "table" and name in NOT_OURS)


@cache
def revisions() -> dict[str, tuple[str, ...]]:
    """Every migration's revision and the revisions it follows, read from the files' own
    `revision = ...` and `down_revision = ...` lines. Every command checks the store's revision
    against the newest, and Alembic costs 0.3 s and 10 MB to load; it loads only to migrate.
    The two lines are found by a pattern (parsing every file whole cost every command 15 ms and
    1.5 MB); see `revision_lines`.
    tests/test_migrations.py checks that this reads what Alembic reads."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        assigned = revision_lines(path.read_text(encoding="utf-8"))
        revision, down = assigned.get("revision"), assigned.get("down_revision")
        if isinstance(revision, str):
            found[revision] = (down,) if isinstance(down, str) else tuple(down or ())
    return found


# A module-level `revision = "0011"` or `down_revision: str | None = "0010"` (one line).
_ASSIGNMENT = re.compile(
    r"^(?P<name>revision|down_revision)\s*(?::[^=\n]*)?=\s*(?P<value>[^\n#]+?)\s*(?:#.*)?$", re.M
)


def revision_lines(source: str) -> dict[str, object]:
    """A migration's `revision` and `down_revision`: from their one-line assignments, else (a value
    over several lines) as the module's top-level statements assign them."""
    try:
        return {match["name"]: ast.literal_eval(match["value"]) for match in _ASSIGNMENT.finditer(source)}
    except (ValueError, SyntaxError):
        pass
    assigned = {}
    for node in ast.parse(source).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(node, ast.AnnAssign):
            target = node.target
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value:
            assigned[target.id] = ast.literal_eval(node.value)
    return assigned


@cache
def head() -> str:
    """The newest revision; read from the migration files once per process (every command asks)."""
    every = revisions()
    heads = set(every) - {down for downs in every.values() for down in downs}
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory  # several heads: let Alembic say what it makes of them

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known(revision: str) -> bool:
    """Whether `revision` is one of this release's migrations (not one from a newer release)."""
    return revision in revisions()


def unknown_revision_message(revision: str) -> str:
    return (
        f"the store is at schema revision {revision[:40]!r}, which this release does not know "
        f"(its newest is {head()}): a newer release made it; run that release"
    )


def current(engine: Engine) -> str | None:
    """The store's revision; None for an empty store or one from before migrations. Read as
    Alembic reads it (its version table), without loading Alembic."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        return revision_among(connection.execute(text(VERSION_QUERY)).scalars().all())


def revision_among(found: list[str]) -> str | None:
    """The one revision the version table names (None: it names none), or SchemaError."""
    if len(found) > 1:
        raise SchemaError(
            f"the store names {len(found)} schema revisions at once; this release made none of them"
        )
    return found[0] if found else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the store to `revision`; returns (revision before, revision after)."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util.exc import CommandError
    from sqlalchemy import inspect

    with engine.begin() as connection:
        config = alembic_config(connection)
        tables = set(inspect(connection).get_table_names())
        before = MigrationContext.configure(connection).get_current_revision()
        if before is not None and not known(before):
            raise SchemaError(unknown_revision_message(before))
        if before is None and "issue" in tables:
            command.stamp(config, BASELINE)  # made by a release from before migrations
            before = BASELINE
        if before is None and revision == "head" and not tables & set(metadata().tables):
            metadata().create_all(connection)  # empty: the newest schema in one go
            command.stamp(config, "head")
        else:
            try:
                command.upgrade(config, revision)
            except CommandError as exc:  # a revision that is not ours: say so, never a traceback
                raise SchemaError(f"cannot upgrade the store: {str(exc).splitlines()[0]}") from exc
        after = MigrationContext.configure(connection).get_current_revision()
    return before, after
