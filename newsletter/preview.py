"""An issue as one (preview) reader would receive it: for the editors' files, the studio and the gates.

The preview reader is nobody: subscriber id 0 does not exist, so the signed links in a preview lead
to a "no longer on the list" page and no real reader's address or token ever appears in one. Its
content links are plain URLs, never tracked ones: they lead to the comparisons from a preview file,
the studio's frames and a test send alike.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from newsletter.config import Settings
from newsletter.content import comparison_views
from newsletter.curation import Week, pick
from newsletter.editions import find_issue, issue_view
from newsletter.issue_words import default_preheader, default_subject
from newsletter.mail import OutgoingMessage, to_eml
from newsletter.output_files import write_files
from newsletter.personalise import IssueMailer
from newsletter.render import Renderer, masthead_from
from newsletter.rendered import RenderedMessage
from newsletter.views import IssueView

PREVIEW_READER = "reader@example.com"
PREVIEW_SUBSCRIBER_ID = 0  # no subscriber has id 0: the preview's personal links lead nowhere


def preview_message(
    rendered: RenderedMessage, settings: Settings, tag: str, *, tracked: bool = False
) -> OutgoingMessage:
    """The message the preview reader would get: both bodies filled in, the list headers set.

    Its content links are plain (the comparison's URL with its UTM tags), so they work wherever the
    preview is read: the preview reader is subscriber 0 of no issue, whose tracked links (`/r/0...`)
    lead nowhere. `tracked`: the variant readers get, with every content link through `/r/`, for the
    quality checks, which look through those links to their destinations."""
    expires = int(time.time()) + settings.link_token_days * 86400
    mailer = IssueMailer(rendered, settings, tag=tag, expires_at=expires)
    return mailer.message(
        delivery_id=0, subscriber_id=PREVIEW_SUBSCRIBER_ID, email=PREVIEW_READER, tracked=tracked
    )


def write_preview(
    view: IssueView, settings: Settings, directory: Path, renderer: Renderer | None = None
) -> list[Path]:
    """Write issue.html, issue.txt and issue.eml into `directory`, each whole or not at all (a full
    disk leaves the earlier files, never an empty one); returns their paths. OutputRefused names a
    file that is not a regular one (a device, a link), OSError a disk's refusal."""
    rendered = (renderer or Renderer()).render_issue(view)
    message = preview_message(rendered, settings, view.slug)
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        directory / "issue.html": message.html.encode(),
        directory / "issue.txt": message.text.encode(),
        directory / "issue.eml": to_eml(message, datetime.now(UTC)),
    }
    write_files(files)
    return list(files)


def week_view(session: Session, week: Week, settings: Settings) -> IssueView | None:
    """The week's issue, or if it has none yet the comparisons its draft would pick; None if neither."""
    issue = find_issue(session, week)
    if issue is not None:
        return issue_view(session, issue, settings)
    picks = pick(session, week, settings.zone, settings.issue_size)
    if not picks:
        return None
    comparisons = tuple(comparison_views(session, picks, settings.site_url))
    return IssueView(
        week=week.label,
        slug=week.label.lower(),
        subject=default_subject(comparisons),
        preheader=default_preheader(comparisons),
        comparisons=comparisons,
        week_start=week.monday,
        masthead=masthead_from(settings),
    )
