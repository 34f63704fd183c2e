"""Alembic's environment: run on the connection that newsletter.schema hands over, never from an ini."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from newsletter import models  # noqa: F401  (registers the tables on SQLModel.metadata)

NOT_OURS = {"apscheduler_jobs", "alembic_version"}  # the scheduler's job store manages its own table


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return not (type_ == "table" and name in NOT_OURS)


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
