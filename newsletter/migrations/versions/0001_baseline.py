"""baseline: the schema of the releases before migrations

A store made by those releases (create_all, no alembic_version table) is stamped at this revision
by newsletter.schema.upgrade and upgraded from here.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 11:06:59.079603
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasedaddress",
        sa.Column("email_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("erased_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email_hash"),
    )
    op.create_table(
        "issue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("week", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("subject_override", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("preheader_override", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("created_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("approved_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("send_started_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("sent_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("sender", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("sender_lease_until", newsletter.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_week"), ["week"], unique=True)

    op.create_table(
        "reviewer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("lens", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviewer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviewer_slug"), ["slug"], unique=True)

    op.create_table(
        "subscriber",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("categories", sa.Text(), nullable=True),
        sa.Column("created_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("requested_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("confirmed_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("unsubscribed_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("paused_until", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("updated_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriber_email"), ["email"], unique=True)
        batch_op.create_index(batch_op.f("ix_subscriber_status"), ["status"], unique=False)

    op.create_table(
        "tool",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("vendor", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("tagline", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("entry_price", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("updated_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tool", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tool_slug"), ["slug"], unique=True)

    op.create_table(
        "comparison",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("dek", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("left_tool_id", sa.Integer(), nullable=False),
        sa.Column("right_tool_id", sa.Integer(), nullable=False),
        sa.Column("url", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("published_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("created_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["left_tool_id"],
            ["tool.id"],
        ),
        sa.ForeignKeyConstraint(
            ["right_tool_id"],
            ["tool.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("comparison", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_comparison_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_comparison_published_at"), ["published_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_comparison_slug"), ["slug"], unique=True)

    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("batch_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("claimed_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("provider_message_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("created_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", newsletter.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issue.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issue_id", "subscriber_id"),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_batch_key"), ["batch_key"], unique=False)
        batch_op.create_index("ix_delivery_issue_status", ["issue_id", "status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_delivery_provider_message_id"), ["provider_message_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_delivery_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "subscriberevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("client_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("at", newsletter.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("subscriberevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriberevent_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "issueitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparison.id"],
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issue.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issue_id", "comparison_id"),
    )
    with op.batch_alter_table("issueitem", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issueitem_comparison_id"), ["comparison_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_issueitem_issue_id"), ["issue_id"], unique=False)

    op.create_table(
        "providerevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("event_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("provider_message_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
        sa.Column("occurred_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("received_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["delivery.id"],
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issue.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "event_key"),
    )
    with op.batch_alter_table("providerevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_providerevent_delivery_id"), ["delivery_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_providerevent_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_providerevent_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_providerevent_subscriber_id"), ["subscriber_id"], unique=False)

    op.create_table(
        "review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("tool_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparison.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["reviewer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tool_id"],
            ["tool.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("comparison_id", "tool_id", "reviewer_id"),
    )
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_comparison_id"), ["comparison_id"], unique=False)

    op.create_table(
        "vote",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comparison_id", sa.Integer(), nullable=False),
        sa.Column("tool_id", sa.Integer(), nullable=False),
        sa.Column("voter", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
        sa.Column("created_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comparison_id"],
            ["comparison.id"],
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
        ),
        sa.ForeignKeyConstraint(
            ["tool_id"],
            ["tool.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("comparison_id", "tool_id", "voter"),
    )
    with op.batch_alter_table("vote", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vote_comparison_id"), ["comparison_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vote_subscriber_id"), ["subscriber_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("vote", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vote_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_vote_comparison_id"))

    op.drop_table("vote")
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_comparison_id"))

    op.drop_table("review")
    with op.batch_alter_table("providerevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_providerevent_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_providerevent_kind"))
        batch_op.drop_index(batch_op.f("ix_providerevent_issue_id"))
        batch_op.drop_index(batch_op.f("ix_providerevent_delivery_id"))

    op.drop_table("providerevent")
    with op.batch_alter_table("issueitem", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issueitem_issue_id"))
        batch_op.drop_index(batch_op.f("ix_issueitem_comparison_id"))

    op.drop_table("issueitem")
    with op.batch_alter_table("subscriberevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriberevent_subscriber_id"))

    op.drop_table("subscriberevent")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_delivery_provider_message_id"))
        batch_op.drop_index("ix_delivery_issue_status")
        batch_op.drop_index(batch_op.f("ix_delivery_batch_key"))

    op.drop_table("delivery")
    with op.batch_alter_table("comparison", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comparison_slug"))
        batch_op.drop_index(batch_op.f("ix_comparison_published_at"))
        batch_op.drop_index(batch_op.f("ix_comparison_category"))

    op.drop_table("comparison")
    with op.batch_alter_table("tool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tool_slug"))

    op.drop_table("tool")
    with op.batch_alter_table("subscriber", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriber_status"))
        batch_op.drop_index(batch_op.f("ix_subscriber_email"))

    op.drop_table("subscriber")
    with op.batch_alter_table("reviewer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviewer_slug"))

    op.drop_table("reviewer")
    with op.batch_alter_table("issue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_week"))

    op.drop_table("issue")
    op.drop_table("erasedaddress")
