"""per-issue rollups of the report's costly counts and the list's past sizes, kept exact by triggers

New table `issuerollup` (issue, part, figures as JSON): what the report's costliest queries found
for an issue (`ledger`: its deliveries by status; `events`: the provider's outcomes and opens;
`hits`: clicks and readers per link, machine reasons), so that the console's pages do not count a
million rows on every view (newsletter/rollups.py). A rollup is exact or absent: triggers
(newsletter/rollup_triggers.py: the same ones a new store gets) delete it in the same transaction
as any change to the rows it counts.

New table `listsize` (moment, size, counts): the list at a past week's end, from the event trail
(newsletter/list_history.py): its size and the events before it by kind, deleted by a trigger when
an event before that moment is inserted, changed or deleted. Existing rows are untouched; nothing is
kept until a page asks for it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-16 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models
from newsletter.rollup_triggers import create_statements, drop_statements

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = newsletter.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "issuerollup",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("part", _text(length=20), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("computed_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.PrimaryKeyConstraint("issue_id", "part"),
    )
    op.create_table(
        "listsize",
        sa.Column("moment", _time(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("computed_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("moment"),
    )
    for statement in create_statements(op.get_bind().dialect.name, watermarks=False):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_statements(op.get_bind().dialect.name, watermarks=False):
        op.execute(statement)
    op.drop_table("listsize")
    op.drop_table("issuerollup")
