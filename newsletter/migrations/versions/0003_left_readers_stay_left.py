"""readers who left and were signed up again stay left until they confirm

Releases before this one turned a reader who had unsubscribed, bounced or complained back into a
*pending* reader when anyone typed their address into the signup form, and the list owner's next
import or `subscribers add` then made them active without their confirmation. This revision puts
every such pending reader back in the state they left in (the latest of their unsubscribed, bounced
or complained events), keeping their outstanding request (`requested_at`) so that their own
confirmation link still works. Nothing else changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LEFT_EVENTS = ("unsubscribed", "bounced", "complained")


def upgrade() -> None:
    connection = op.get_bind()
    subscriber = sa.table("subscriber", sa.column("id"), sa.column("status"))
    event = sa.table(
        "subscriberevent", sa.column("id"), sa.column("subscriber_id"), sa.column("kind"), sa.column("at")
    )
    latest = (
        sa.select(event.c.subscriber_id, sa.func.max(event.c.id).label("event_id"))
        .where(event.c.kind.in_(LEFT_EVENTS))
        .group_by(event.c.subscriber_id)
        .subquery()
    )
    rows = connection.execute(
        sa.select(subscriber.c.id, event.c.kind)
        .join(latest, latest.c.subscriber_id == subscriber.c.id)
        .join(event, event.c.id == latest.c.event_id)
        .where(subscriber.c.status == "pending")
    ).all()
    for subscriber_id, kind in rows:
        connection.execute(sa.update(subscriber).where(subscriber.c.id == subscriber_id).values(status=kind))


def downgrade() -> None:
    """Nothing to undo: the earlier schema is the same, and the repaired states are the right ones."""
