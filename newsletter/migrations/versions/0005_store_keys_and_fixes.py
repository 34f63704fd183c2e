"""the store keeps its own erasure key

New table `storekey`: keys that belong to the store rather than to a process's settings. The hashes
of erased addresses are keyed with its `erasure` key (made with the first erasure), so rotating the
signing key or copying the store into a database run with another key no longer turns the guard
against re-adding an erased address off. Hashes kept by earlier releases (keyed with the signing
key) stay and are still checked.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import newsletter.models

revision = "0005"
down_revision = "0004"
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


def downgrade() -> None:
    op.drop_table("storekey")
