"""the store keeps its own erasure key; folded clicks keep who clicked, so readers are counted once

New table `storekey`: keys that belong to the store rather than to a process's settings. The hashes
of erased addresses are keyed with its `erasure` key (made with the first erasure), so rotating the
signing key or copying the store into a database run with another key no longer turns the guard
against re-adding an erased address off. Hashes kept by earlier releases (keyed with the signing
key) stay and are still checked.

New table `foldedclick`: per (issue, reader, link), that the reader's human hits on the link were
folded by retention. The fold adds to it instead of to `linkcount.human_readers`, which summed each
run's distinct readers and so counted a reader whose clicks fell on different fold days once per
run. Counts folded by earlier releases stay as they were.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_text = sqlmodel.sql.sqltypes.AutoString
_time = newsletter.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "storekey",
        sa.Column("name", _text(length=40), nullable=False),
        sa.Column("value", _text(length=128), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "foldedclick",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["issue_id"], ["issue.id"]),
        sa.ForeignKeyConstraint(["link_id"], ["issuelink.id"]),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("issue_id", "subscriber_id", "link_id"),
    )
    op.create_index("ix_foldedclick_subscriber_id", "foldedclick", ["subscriber_id"], unique=False)
    op.create_index("ix_foldedclick_link_id", "foldedclick", ["link_id"], unique=False)


def downgrade() -> None:
    op.drop_table("foldedclick")
    op.drop_table("storekey")
