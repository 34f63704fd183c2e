"""Alembic's environment: run on the connection that newsletter.schema hands over, never from an ini."""

from __future__ import annotations

from alembic import context

from newsletter.schema import include_object, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata(),  # the models' tables and every index
    include_object=include_object,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
