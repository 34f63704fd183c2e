"""welcome emails and the re-engagement question: what each reader is owed, asked and answered

New tables: `welcomemail` (per reader: a welcome owed since a confirmation, when the last one went
out, the lease of the process sending it) and `sunsetask` (one "still want it?" question per reader
and span of silent issues, when it went out and how it ended). Existing rows are untouched: readers
already on the list are owed no welcome.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = newsletter.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "welcomemail",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("due_at", _time(), nullable=True),
        sa.Column("claimed_until", _time(), nullable=True),
        sa.Column("sent_at", _time(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", _text(length=500), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("subscriber_id"),
    )
    op.create_index("ix_welcomemail_due_at", "welcomemail", ["due_at"], unique=False)
    op.create_table(
        "sunsetask",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("last_issue_id", sa.Integer(), nullable=False),
        sa.Column("issues", sa.Integer(), nullable=False),
        sa.Column("asked_at", _time(), nullable=False),
        sa.Column("claimed_until", _time(), nullable=True),
        sa.Column("sent_at", _time(), nullable=True),
        sa.Column("answer_by", _time(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", _text(length=500), nullable=True),
        sa.Column("outcome", _text(length=20), nullable=True),
        sa.Column("resolved_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["last_issue_id"], ["issue.id"]),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "last_issue_id"),
    )
    op.create_index("ix_sunsetask_subscriber_id", "sunsetask", ["subscriber_id"], unique=False)
    op.create_index("ix_sunsetask_last_issue_id", "sunsetask", ["last_issue_id"], unique=False)
    op.create_index("ix_sunsetask_outcome", "sunsetask", ["outcome"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_sunsetask_outcome", table_name="sunsetask")
    op.drop_index("ix_sunsetask_last_issue_id", table_name="sunsetask")
    op.drop_index("ix_sunsetask_subscriber_id", table_name="sunsetask")
    op.drop_table("sunsetask")
    op.drop_index("ix_welcomemail_due_at", table_name="welcomemail")
    op.drop_table("welcomemail")
