"""indexes for the console's reports at scale

With a million deliveries and half a million hits per issue, the issue report, its headline and the
list's week-by-week figures scanned whole tables: each index here serves one of their queries with
an index-only walk in the order it groups by (see bench/console.py for the figures).

- `subscriberevent (at, kind)`: the weeks' events by kind (signups, confirmations, leaves), and
  `subscriberevent (at)` for the few signups an active reader asked for again (not signups);
- `subscriberevent (subscriber_id, id, at, kind)` for changes of state only: the list's size at a
  moment (each reader's latest change of state before it);
- `providerevent (issue_id, kind, delivery_id)`: deliveries with an event of each kind;
- `linkhit (issue_id, machine, link_id, subscriber_id, reason)`: hits and readers per link and
  verdict, human readers, machine reasons.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SIGNUP_AGAIN = "kind = 'signup_requested' AND detail = 'already active'"
STATE_EVENTS = (
    "kind IN ('confirmed', 'subscribed', 'unsubscribed', 'bounced', 'complained', 'erased', 'suppressed')"
)


def upgrade() -> None:
    op.create_index("ix_subscriberevent_at_kind", "subscriberevent", ["at", "kind"], unique=False)
    op.create_index(
        "ix_subscriberevent_signup_again",
        "subscriberevent",
        ["at"],
        unique=False,
        postgresql_where=sa.text(SIGNUP_AGAIN),
        sqlite_where=sa.text(SIGNUP_AGAIN),
    )
    op.create_index(
        "ix_subscriberevent_state",
        "subscriberevent",
        ["subscriber_id", "id", "at", "kind"],
        unique=False,
        postgresql_where=sa.text(STATE_EVENTS),
        sqlite_where=sa.text(STATE_EVENTS),
    )
    op.create_index(
        "ix_providerevent_issue_kind_delivery",
        "providerevent",
        ["issue_id", "kind", "delivery_id"],
        unique=False,
    )
    op.create_index(
        "ix_linkhit_issue_machine_link",
        "linkhit",
        ["issue_id", "machine", "link_id", "subscriber_id", "reason"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_linkhit_issue_machine_link", table_name="linkhit")
    op.drop_index("ix_providerevent_issue_kind_delivery", table_name="providerevent")
    op.drop_index("ix_subscriberevent_state", table_name="subscriberevent")
    op.drop_index("ix_subscriberevent_signup_again", table_name="subscriberevent")
    op.drop_index("ix_subscriberevent_at_kind", table_name="subscriberevent")
