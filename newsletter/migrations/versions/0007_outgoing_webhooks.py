"""outgoing webhooks: the endpoints, the outbox and the attempt log

New tables: `webhookendpoint` (a receiver: its URL, the event types it wants, its signing secret
encrypted under NEWSLETTER_SECRET_KEY, whether it is enabled and how it is doing), `webhookmessage`
(the outbox: one event for one endpoint, written in the transaction of the change it reports, until
it is delivered or given up) and `webhookattempt` (every try, kept for a while). No existing table
changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-14 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = newsletter.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "webhookendpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", _text(length=2000), nullable=False),
        sa.Column("events", _text(length=1000), nullable=False),
        sa.Column("secret", _text(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_at", _time(), nullable=True),
        sa.Column("disabled_reason", _text(length=500), nullable=True),
        sa.Column("failing_since", _time(), nullable=True),
        sa.Column("last_success_at", _time(), nullable=True),
        sa.Column("last_failure_at", _time(), nullable=True),
        sa.Column("last_error", _text(length=500), nullable=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhookmessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("msg_id", _text(length=40), nullable=False),
        sa.Column("type", _text(length=60), nullable=False),
        sa.Column("subject", _text(length=60), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", _text(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("next_attempt_at", _time(), nullable=False),
        sa.Column("lease_until", _time(), nullable=True),
        sa.Column("claimed_by", _text(length=120), nullable=True),
        sa.Column("delivered_at", _time(), nullable=True),
        sa.Column("last_error", _text(length=500), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhookendpoint.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint_id", "msg_id"),
    )
    op.create_index(
        "ix_webhookmessage_queue", "webhookmessage", ["endpoint_id", "subject", "id"], unique=False
    )
    op.create_index("ix_webhookmessage_due", "webhookmessage", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "webhookattempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("at", _time(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("error", _text(length=500), nullable=True),
        sa.Column("response", _text(length=500), nullable=True),
        sa.ForeignKeyConstraint(["endpoint_id"], ["webhookendpoint.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["webhookmessage.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhookattempt_at", "webhookattempt", ["at"], unique=False)
    op.create_index("ix_webhookattempt_endpoint_id", "webhookattempt", ["endpoint_id"], unique=False)
    op.create_index("ix_webhookattempt_message_id", "webhookattempt", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_table("webhookattempt")
    op.drop_table("webhookmessage")
    op.drop_table("webhookendpoint")
