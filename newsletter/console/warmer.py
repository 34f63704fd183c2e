"""Counts what the console's costliest pages show before an editor asks, on a thread of its own.

A sent issue's report at a million deliveries takes most of a second to count the first time;
after that its rollups (newsletter/rollups.py) answer in milliseconds, and grow with each hit and
provider event that arrives. What drops them is rare and comes in bursts (a send ending, a
retention fold, an erasure, an event of the past): every WARM_EVERY seconds this looks whether the
latest RECENT settled issues and the list's weeks are kept, and counts what is not, so the week
page, the report pages and the readers page open warm. A look that finds everything kept reads a
few rows and writes nothing. It counts through the pages' own functions: what it keeps is exactly
what they would have kept.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from newsletter.audience import list_growth
from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.models import Issue, IssueRollup, ListSize, utcnow
from newsletter.reports import issue_report
from newsletter.rollups import SETTLED, TABLES

log = logging.getLogger("newsletter.console")
WARM_EVERY = 30.0  # seconds between looks
FIRST_LOOK = 2.0  # seconds after start: the console answers its first requests first
RECENT = 3  # settled issues kept warm, newest first
PARTS = len(TABLES)  # ledger, events, hits, readers: every part a rollup has
WEEKS = 26  # the readers page's span (console/readers.py)


class FigureWarmer:
    """Starts with the console, stops with it; does nothing without a store."""

    def __init__(self, engine: Engine | None, settings: Settings, every: float = WARM_EVERY):
        self.engine, self.settings, self.every = engine, settings, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.engine is None or self.every <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="console-figures", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        wait = FIRST_LOOK
        while not self._stop.wait(wait):
            wait = self.every
            try:
                self.warm_once()
            except Exception:  # a store that is down or busy now may answer next time
                log.warning("counting the console's figures ahead failed; trying again later", exc_info=True)

    def warm_once(self) -> list[int]:
        """Count the figures of the recent settled issues that are not kept: their ids."""
        assert self.engine is not None
        with session_scope(self.engine) as session:
            recent = list(
                session.exec(
                    select(Issue.id)
                    .where(col(Issue.status).in_(SETTLED), col(Issue.sent_at).is_not(None))
                    .order_by(col(Issue.sent_at).desc())
                    .limit(RECENT)
                )
            )
            kept = dict(
                session.exec(
                    select(IssueRollup.issue_id, func.count())
                    .where(col(IssueRollup.issue_id).in_(recent))
                    .group_by(IssueRollup.issue_id)
                ).all()
            )
        cold = [issue_id for issue_id in recent if kept.get(issue_id, 0) < PARTS]
        for issue_id in cold:
            if self._stop.is_set():
                break
            with session_scope(self.engine) as session:
                issue_report(session, issue_id, self.settings.zone)
        if not self._stop.is_set():
            with session_scope(self.engine) as session:
                if not self._weeks_kept(session):
                    list_growth(session, WEEKS, self.settings.zone)  # keeps the past weeks' sizes
        return cold

    def _weeks_kept(self, session) -> bool:
        """Whether last week's end is kept: a change of the past drops every point after it, so
        the latest one stands only while all the others do."""
        latest = session.exec(select(func.max(ListSize.moment))).one()
        this_week = Week.containing(utcnow(), self.settings.zone).bounds(self.settings.zone)[0]
        return latest is not None and latest >= this_week
