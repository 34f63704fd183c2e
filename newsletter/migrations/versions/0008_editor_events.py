"""the editors' console: every change an editor makes, and a send's rate from the ledger

New table: `editorevent` (when, which editor, what action, on which issue or comparison, a detail),
written in the same transaction as the change. New index: `ix_delivery_issue_sent_at` on
`delivery (issue_id, sent_at)`, so the console's live page counts the messages of a send's last
minute without walking its whole ledger. Existing rows are untouched.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-15 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = newsletter.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "editorevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("editor", _text(length=120), nullable=False),
        sa.Column("action", _text(length=40), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("comparison_id", sa.Integer(), nullable=True),
        sa.Column("detail", _text(length=2000), nullable=True),
        sa.ForeignKeyConstraint(["comparison_id"], ["comparison.id"]),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_editorevent_at", "editorevent", ["at"], unique=False)
    op.create_index("ix_editorevent_issue_id", "editorevent", ["issue_id"], unique=False)
    op.create_index("ix_editorevent_comparison_id", "editorevent", ["comparison_id"], unique=False)
    op.create_index("ix_delivery_issue_sent_at", "delivery", ["issue_id", "sent_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delivery_issue_sent_at", table_name="delivery")
    op.drop_table("editorevent")
