"""Sessions on the store, and the store's schema made or upgraded. The engines and URLs are
`newsletter.engines` (Core only, re-exported here): importing this module loads the ORM, the table
models and the webhook outbox's session hooks, so every session made here records reader events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from newsletter.engines import SQLITE_BUSY_TIMEOUT_MS, make_engine  # noqa: F401  (as before)
from newsletter.outgoing_webhooks import outbox  # noqa: F401  (every reader event reaches the webhook outbox)
from newsletter.store_urls import (  # noqa: F401  (the store's URL, as before)
    DRIVERS,
    EXPECTED_URL,
    is_sqlite,
    parse_database_url,
    shown_url,
    sqlite_location_problem,
    sqlite_path,
)


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
