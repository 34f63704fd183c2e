"""readers suppressed by an import from another platform, with the reason

A reader whom another platform's export marks as unsubscribed, cleaned, bounced, complained, disabled,
blocklisted or deleted is stored with the new state `suppressed` (a string column: no schema change
for that) and the export's reason in the new nullable column `subscriber.status_reason`
("imported: mailchimp cleaned"). Existing rows keep their data; the new column is empty.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03 18:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status_reason", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True)
        )


def downgrade() -> None:
    # The earlier release knows no `suppressed`: it would not count them as left. Unsubscribed is the
    # nearest state it does know, and it keeps them off every send until they confirm.
    op.execute("UPDATE subscriber SET status = 'unsubscribed' WHERE status = 'suppressed'")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_column("status_reason")
