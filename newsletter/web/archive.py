"""The public archive: past issues on the web, and an Atom feed of them.

`/issues/{slug}` is an issue's web version, the target of every email's "view in your browser" link.
It is built from the same plain view as the email, by a web page template, so it carries no reader's
personal links at all (no token, no vote or unsubscribe link) and no one can be identified by sharing
it. The list and the feed show sent issues only; an issue's own page also answers while it is being
sent, since readers who already have it may click through before the last batch has gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import EditionError, issue_view
from newsletter.issue_words import intro_line, week_label
from newsletter.models import Issue, IssueStatus
from newsletter.views import IssueView
from newsletter.web.common import WebState

router = APIRouter()
FEED_ENTRIES = 20
ATOM = "application/atom+xml; charset=utf-8"
PUBLIC_CACHE = {"Cache-Control": "public, max-age=300"}


@dataclass(frozen=True)
class Published:
    """A sent issue as the archive shows it."""

    view: IssueView
    sent_at: datetime

    @property
    def slug(self) -> str:
        return self.view.slug

    @property
    def subject(self) -> str:
        return self.view.subject

    @property
    def week_number(self) -> int:
        return self.view.week_start.isocalendar().week

    @property
    def date_label(self) -> str:
        return week_label(self.view.week_start)


def sent_issues(session: Session, state: WebState, limit: int | None = None) -> list[Published]:
    """Sent issues, newest first (an issue whose comparisons were since deleted is left out)."""
    query = select(Issue).where(Issue.status == IssueStatus.SENT).order_by(col(Issue.sent_at).desc())
    published = []
    for issue in session.exec(query.limit(limit) if limit else query):
        try:
            view = issue_view(session, issue, state.settings)
        except EditionError:
            continue
        published.append(Published(view, issue.sent_at or issue.updated_at))
    return published


def page(state: WebState, template: str, **context) -> HTMLResponse:
    """A public page without forms: no CSRF cookie, so shared caches may keep it."""
    body = state.pages.get_template(template).render(masthead=state.masthead, robots="index", **context)
    return HTMLResponse(body, headers=PUBLIC_CACHE)


@router.get("/issues", response_class=HTMLResponse)
async def issues_page(request: Request) -> Response:
    state: WebState = request.app.state.web

    def load() -> list[Published]:
        with session_scope(state.engine) as session:
            return sent_issues(session, state)

    return page(state, "web/issues.html.j2", issues=await run_in_threadpool(load))


@router.get("/issues/{slug}", response_class=HTMLResponse)
async def issue_page(request: Request, slug: str) -> Response:
    state: WebState = request.app.state.web
    try:
        week = Week.parse(slug)
    except ValueError:
        raise HTTPException(404, "There is no issue at this address.") from None

    def load() -> IssueView | None:
        with session_scope(state.engine) as session:
            issue = session.exec(select(Issue).where(Issue.week == week.label)).first()
            if issue is None or issue.status not in (IssueStatus.SENDING, IssueStatus.SENT):
                return None  # drafts and cancelled issues are nobody's business
            return issue_view(session, issue, state.settings)

    view = await run_in_threadpool(load)
    if view is None:
        raise HTTPException(404, "There is no issue at this address.")
    return page(
        state,
        "web/issue.html.j2",
        issue=view,
        week_number=view.week_start.isocalendar().week,
        date_label=week_label(view.week_start),
        intro=intro_line(view.comparisons),
    )


@router.get("/feed.xml")
async def feed(request: Request) -> Response:
    """Atom (RFC 4287): the latest sent issues, each with its comparisons as HTML content."""
    state: WebState = request.app.state.web

    def load() -> list[Published]:
        with session_scope(state.engine) as session:
            return sent_issues(session, state, FEED_ENTRIES)

    published = await run_in_threadpool(load)
    site = state.settings.site_url
    entry_html = state.pages.get_template("web/partials/feed-entry.html.j2")
    entries = []
    for item in published:
        url = f"{site}/issues/{item.slug}"
        entries.append(
            {
                "url": url,
                "subject": item.subject,
                "published": _rfc3339(item.sent_at),
                "updated": _rfc3339(item.sent_at),
                "summary": item.view.preheader,
                "content": entry_html.render(
                    issue=item.view, intro=intro_line(item.view.comparisons), site_url=site, url=url
                ),
            }
        )
    updated = published[0].sent_at if published else datetime.now(UTC)
    body = state.pages.get_template("web/feed.xml.j2").render(
        masthead=state.masthead,
        site_url=site,
        promise=state.settings.promise,
        updated=_rfc3339(updated),
        entries=entries,
    )
    return Response(body, media_type=ATOM, headers=PUBLIC_CACHE)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
