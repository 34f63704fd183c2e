"""The issue's send lease: one exclusive sender per issue at a time, and the one rule for "its
holder is a dead process on this machine" that the ledger's take-overs and the outgoing webhooks'
sender share. A lease is a holder and a time on the issue's row, renewed while batches go out."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine

from newsletter.db import session_scope
from newsletter.models import Issue, utcnow


def sender_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseTaken(RuntimeError):
    """Another process holds this issue's send lease."""


def take_lease(engine: Engine, issue_id: int, me: str, seconds: float) -> None:
    """Hold the issue's send lease, or raise LeaseTaken. A lease whose holder is a dead process on
    this machine is taken over at once; one held elsewhere is taken over when it expires."""
    now = utcnow()
    with session_scope(engine) as session:
        # Row lock: two processes asking at once take turns (SQLite's BEGIN IMMEDIATE already does).
        issue = session.get(Issue, issue_id, with_for_update=True)
        holder, until = issue.sender, issue.sender_lease_until
        if holder and holder != me and until and until > now and alive(holder):
            raise LeaseTaken(
                f"issue {issue.week} is being sent by {holder} (lease until {until:%H:%M:%S} UTC)"
            )
        issue.sender, issue.sender_lease_until = me, now + timedelta(seconds=seconds)
        session.add(issue)


def renew_lease(engine: Engine, issue_id: int, me: str, seconds: float) -> bool:
    with session_scope(engine) as session:
        result = session.execute(
            update(Issue)
            .where(Issue.id == issue_id, Issue.sender == me)
            .values(sender_lease_until=utcnow() + timedelta(seconds=seconds))
        )
        return bool(result.rowcount)


def release_lease(engine: Engine, issue_id: int, me: str) -> None:
    with session_scope(engine) as session:
        session.execute(
            update(Issue)
            .where(Issue.id == issue_id, Issue.sender == me)
            .values(sender=None, sender_lease_until=None)
        )


def alive(holder: str) -> bool:
    """False only when the holder is a process on this machine that no longer runs."""
    host, _, rest = holder.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
