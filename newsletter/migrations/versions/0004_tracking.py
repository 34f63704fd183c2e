"""first-party click tracking: the links an issue contained, the raw hits, their folded counts

New tables: `issuelink` (the links an issue really contained, the only ones its redirect answers),
`linkhit` (every request to one of them, labelled human or machine with the reason) and `linkcount`
(hits past their retention, folded into counts). New columns: `subscriber.tracking` (the reader's
choice, on for everyone already on the list), `issue.token_expires_at` (the expiry signed into the
issue's reader tokens, which names the issue an unsubscribe or a vote came from),
`subscriberevent.issue_id` and `vote.issue_id` (that issue), `providerevent.machine` (the provider
says a machine opened or clicked). Existing rows keep their data; the new columns are empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = newsletter.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "issuelink",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("code", _text(length=16), nullable=False),
        sa.Column("kind", _text(length=20), nullable=False),
        sa.Column("url", _text(length=2000), nullable=False),
        sa.Column("label", _text(length=300), nullable=False),
        sa.Column("comparison_slug", _text(length=200), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issue_id", "code"),
    )
    op.create_index("ix_issuelink_issue_id", "issuelink", ["issue_id"], unique=False)
    op.create_table(
        "linkhit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("at", _time(), nullable=False),
        sa.Column("method", _text(length=10), nullable=False),
        sa.Column("agent", _text(length=40), nullable=False),
        sa.Column("prefetch", sa.Boolean(), nullable=False),
        sa.Column("client_hash", _text(length=32), nullable=True),
        sa.Column("machine", sa.Boolean(), nullable=False),
        sa.Column("reason", _text(length=40), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.ForeignKeyConstraint(["link_id"], ["issuelink.id"]),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_linkhit_at", "linkhit", ["at"], unique=False)
    op.create_index("ix_linkhit_issue_id", "linkhit", ["issue_id"], unique=False)
    op.create_index("ix_linkhit_link_id", "linkhit", ["link_id"], unique=False)
    op.create_index("ix_linkhit_subscriber_id", "linkhit", ["subscriber_id"], unique=False)
    op.create_index("ix_linkhit_reader", "linkhit", ["issue_id", "subscriber_id", "at"], unique=False)
    op.create_table(
        "linkcount",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("human", sa.Integer(), nullable=False),
        sa.Column("machine", sa.Integer(), nullable=False),
        sa.Column("human_readers", sa.Integer(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.ForeignKeyConstraint(["link_id"], ["issuelink.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_linkcount_issue_id", "linkcount", ["issue_id"], unique=False)
    op.create_index("ix_linkcount_link_id", "linkcount", ["link_id"], unique=False)

    # Plain ALTER TABLE ... ADD COLUMN on both databases: a batch (table copy) on SQLite would drop
    # tables that other rows still refer to.
    op.add_column("subscriber", sa.Column("tracking", sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column("issue", sa.Column("token_expires_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_issue_token_expires_at", "issue", ["token_expires_at"], unique=False)
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("subscriberevent", "vote"):
        if sqlite:  # SQLite adds a column with its reference in one statement, but no constraint later
            op.execute(f"ALTER TABLE {table} ADD COLUMN issue_id INTEGER REFERENCES issue (id)")
        else:
            op.add_column(table, sa.Column("issue_id", sa.Integer(), nullable=True))
            op.create_foreign_key(None, table, "issue", ["issue_id"], ["id"])
        op.create_index(f"ix_{table}_issue_id", table, ["issue_id"], unique=False)
    op.add_column("providerevent", sa.Column("machine", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("providerevent", schema=None) as batch_op:
        batch_op.drop_column("machine")
    for table in ("vote", "subscriberevent"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f"ix_{table}_issue_id")
            batch_op.drop_column("issue_id")
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.drop_index("ix_issue_token_expires_at")
        batch_op.drop_column("token_expires_at")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_column("tracking")
    op.drop_table("linkcount")
    op.drop_table("linkhit")
    op.drop_table("issuelink")
