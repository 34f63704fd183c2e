"""rollups of hits and provider events record the highest row id they counted, and grow from it

Hits and provider events flow in for days after a send: every one dropped the issue's `hits`,
`readers` or `events` rollup, so the console counted half a million hits again on each view while
they flowed. A rollup of those parts now records `through_id`, the highest id it counted; the insert
triggers of `linkhit` and `providerevent` drop it only for a row at or below that id, and a view adds
the rows above it (newsletter/rollups.py, newsletter/report_growth.py). Rollups already kept have no
`through_id`: they are dropped here and counted again on the next view.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-18 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from newsletter.rollup_triggers import drop_growing_statements, growing_statements

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("issuerollup", sa.Column("through_id", sa.Integer(), nullable=True))
    op.execute("DELETE FROM issuerollup")
    for statement in drop_growing_statements(dialect, watermarks=False) + growing_statements(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    drop = drop_growing_statements(dialect, watermarks=True)
    for statement in drop + growing_statements(dialect, watermarks=False):
        op.execute(statement)
    op.execute("DELETE FROM issuerollup")
    op.drop_column("issuerollup", "through_id")
