"""delivery leases for several sender workers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 11:07:06.352779
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True)
        )
        batch_op.add_column(sa.Column("lease_until", newsletter.models.UTCDateTime(), nullable=True))
        # Claims read queued rows in id order: with `id` in the index PostgreSQL needs no sort per claim.
        batch_op.drop_index("ix_delivery_issue_status")
        batch_op.create_index("ix_delivery_issue_status", ["issue_id", "status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_issue_status")
        batch_op.create_index("ix_delivery_issue_status", ["issue_id", "status"], unique=False)
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
