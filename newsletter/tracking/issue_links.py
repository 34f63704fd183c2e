"""The link table of an issue: written before its messages go out, read by the redirect.

Codes are the same for the same link in every readers' variant and every process (a hash of kind and
URL), so any number of senders may register the links they render: a row that exists is left alone.
Two different links with one code (a 56-bit collision) would make the redirect ambiguous: refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from newsletter.db import session_scope
from newsletter.models import IssueLink, utcnow
from newsletter.tracking.links import LinkSpec


class LinkCollision(RuntimeError):
    """Two different links of one issue hash to the same code."""


def register_links(engine: Engine, issue_id: int, specs: Iterable[LinkSpec]) -> None:
    """Store every link in `specs` for the issue (idempotent; safe with senders working at once)."""
    rows = [
        {
            "issue_id": issue_id,
            "code": spec.code,
            "kind": str(spec.kind),
            "url": spec.url,
            "label": spec.label[:300],
            "comparison_slug": spec.comparison,
            "created_at": utcnow(),
        }
        for spec in specs
    ]
    if not rows:
        return
    with session_scope(engine) as session:
        # The store's own dialect's INSERT ... ON CONFLICT; the other dialect's modules never load.
        if session.get_bind().dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        session.execute(
            insert(IssueLink).values(rows).on_conflict_do_nothing(index_elements=["issue_id", "code"])
        )
        stored = dict(
            session.execute(
                select(IssueLink.code, IssueLink.url).where(
                    IssueLink.issue_id == issue_id, IssueLink.code.in_([row["code"] for row in rows])
                )
            ).all()
        )
    for row in rows:
        if stored.get(row["code"]) != row["url"]:
            raise LinkCollision(f"two links of issue {issue_id} share the code {row['code']}")


def issue_links(session, issue_id: int) -> list[IssueLink]:
    return list(
        session.scalars(select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.id))
    )


def issue_for_token(session, expires_at: int) -> int | None:
    """The issue whose reader tokens carry this expiry (see `Issue.token_expires_at`), if any."""
    from newsletter.models import Issue

    return session.execute(select(Issue.id).where(Issue.token_expires_at == expires_at)).scalars().first()
