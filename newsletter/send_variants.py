"""The issue as each reader gets it during a send: one render per distinct set of comparisons that
the readers' chosen categories select, compiled once into a mailer that personalises each message.

Apart from `newsletter.delivery`'s Sender so that the send loop reads as what it does (claim, send,
settle) and this keeps what the readers' variants need: which comparisons a set of categories gets,
the renders, the reader tokens' expiry and the tracked links registered before any message carries
them.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.editions import issue_view, variant_comparisons
from newsletter.models import Issue, Subscriber, SubscriberStatus
from newsletter.personalise import IssueMailer
from newsletter.render import RenderedMessage, Renderer
from newsletter.tracking.issue_links import register_links


class IssueVariants:
    """Every variant of one issue that its readers get, rendered and compiled once each."""

    def __init__(self, engine: Engine, settings: Settings, renderer: Renderer, issue_id: int) -> None:
        self.engine, self.settings, self.renderer, self.issue_id = engine, settings, renderer, issue_id
        self._chosen: dict[str | None, tuple[int, ...]] = {}  # reader categories -> comparison ids
        self._rendered: dict[tuple[int, ...], RenderedMessage] = {}
        self._by_key: dict[tuple[int, ...], IssueMailer] = {}
        self._mailers: dict[str | None, IssueMailer | None] = {}

    @property
    def mailers(self) -> list[IssueMailer]:
        """The compiled variants so far, in the order they were first needed."""
        return list(self._by_key.values())

    def render_all(self) -> int:
        """Render every variant the active readers will get (one per distinct set of comparisons),
        before anything changes: a RenderError here (invalid MJML, over Gmail's size) refuses the
        send while the issue is as it was. Returns how many distinct renders there were."""
        with session_scope(self.engine) as session:
            choices = session.exec(
                select(Subscriber.categories).where(Subscriber.status == SubscriberStatus.ACTIVE).distinct()
            ).all()
        for categories in sorted({None, *choices}, key=lambda c: c or ""):
            self.comparisons_for(categories)
        return len(self._rendered)

    def comparisons_for(self, categories: str | None) -> tuple[int, ...]:
        """The comparison ids readers with these categories (None: all) get; () when none."""
        if categories not in self._chosen:
            with session_scope(self.engine) as session:
                issue = session.get(Issue, self.issue_id)
                chosen = frozenset(json.loads(categories)) if categories else None
                comparisons = variant_comparisons(session, issue, self.settings, chosen)
                key = tuple(c.id for c in comparisons)
                if key and key not in self._rendered:
                    view = issue_view(session, issue, self.settings, comparisons)
                    self._rendered[key] = self.renderer.render_issue(view)
            self._chosen[categories] = key
        return self._chosen[categories]

    def mailer_for(self, categories: str | None) -> IssueMailer | None:
        """The compiled issue for readers with these categories (None: all), or None if the week has
        nothing in them. Rendered once per distinct set of comparisons, however many readers share it
        (`render_all` renders them all before the send opens)."""
        if categories in self._mailers:
            return self._mailers[categories]
        key = self.comparisons_for(categories)
        mailer = self._by_key.get(key) if key else None
        if key and mailer is None:
            expires, tag = self._token_expiry()
            mailer = IssueMailer(
                self._rendered[key], self.settings, tag=tag, expires_at=expires, issue_id=self.issue_id
            )
            register_links(self.engine, self.issue_id, mailer.links)  # before any message carries them
            self._by_key[key] = mailer
        self._mailers[categories] = mailer
        return mailer

    def _token_expiry(self) -> tuple[int, str]:
        """(the expiry of the issue's reader tokens, its tag). Fixed by the issue's first send and
        kept on the issue, so every run and worker signs the same expiry (a token names its issue by
        it) even if NEWSLETTER_LINK_TOKEN_DAYS changed in between."""
        with session_scope(self.engine) as session:
            issue = session.get(Issue, self.issue_id, with_for_update=True)
            if issue.token_expires_at is None:
                expires = issue.send_started_at + timedelta(days=self.settings.link_token_days)
                issue.token_expires_at = int(expires.timestamp())
                session.add(issue)
            return issue.token_expires_at, issue.slug
