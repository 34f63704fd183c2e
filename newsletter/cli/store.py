"""The store's schema and moving it: `db upgrade`, `db current` and `db copy`."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter.cli.apps import db_app
from newsletter.cli.common import console, fail, load_settings, open_store, unreachable


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the store or upgrade its schema to this release's (Alembic migrations; data kept)."""
    from sqlalchemy.exc import DBAPIError

    from newsletter import schema
    from newsletter.db import make_engine
    from newsletter.schema import SchemaError

    settings = load_settings()
    engine = make_engine(settings.database_url)
    try:
        before, after = schema.upgrade(engine)
    except DBAPIError as exc:
        unreachable("the store", exc)
    except SchemaError as exc:
        fail(str(exc))
    if before == after:
        console.print(f"Store already at revision [bold]{after}[/] (the newest).")
    else:
        console.print(f"Store upgraded from revision {before or '(empty)'} to [bold]{after}[/].")


@db_app.command("current")
def db_current() -> None:
    """The store's schema revision and the newest one this release knows; creates nothing."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError

    from newsletter import schema
    from newsletter.db import make_engine, shown_url, sqlite_path

    settings = load_settings()
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        fail(f"no store at {path} (nothing was created); `newsletter init` creates it")
    engine = make_engine(settings.database_url)
    try:
        revision = schema.current(engine)
        empty = revision is None and not inspect(engine).has_table("issue")
    except DBAPIError as exc:
        unreachable("the store", exc)
    if empty:  # an empty database (PostgreSQL) is no store either
        fail(f"no store at {shown_url(settings.database_url)}; `newsletter init` creates it")
    console.print(f"Store revision: {revision or '(from before migrations)'}; newest: {schema.head()}")


@db_app.command("copy")
def db_copy(
    to: Annotated[str, typer.Option("--to", help="SQLAlchemy URL of the empty target store.")],
) -> None:
    """Copy this store (NEWSLETTER_DATABASE_URL) into an empty store at --to, e.g. SQLite into
    PostgreSQL; checked by counts, all or nothing."""
    from sqlalchemy.exc import DBAPIError

    from newsletter.db import make_engine, parse_database_url, sqlite_location_problem, sqlite_path
    from newsletter.store_copy import CopyError, copy_store

    try:
        to = parse_database_url(to)
    except ValueError as exc:
        fail(f"--to: {exc}")
    target_path = sqlite_path(to)
    if target_path is not None and (problem := sqlite_location_problem(target_path)):
        fail(f"--to: {problem}")
    settings = load_settings()
    source = open_store(settings)
    target = make_engine(to)
    try:
        counts = copy_store(
            source, target, on_table=lambda name, rows: console.print(f"  {name}: {rows} rows")
        )
    except CopyError as exc:
        fail(str(exc))
    except DBAPIError as exc:
        unreachable("the target store", exc)
    shown = target.url.render_as_string(hide_password=True)
    total = sum(count.target for count in counts)
    console.print(f"Counts checked, every table equal: {total} rows copied into {shown}.")
