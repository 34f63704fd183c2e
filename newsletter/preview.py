"""An issue written to files for an editor: what one (preview) reader would receive."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from newsletter.config import Settings
from newsletter.mail import to_eml
from newsletter.personalise import IssueMailer
from newsletter.render import Renderer
from newsletter.views import IssueView

PREVIEW_READER = "reader@example.com"
PREVIEW_SUBSCRIBER_ID = 0  # no subscriber has id 0: the preview's personal links lead nowhere


def write_preview(
    view: IssueView, settings: Settings, directory: Path, renderer: Renderer | None = None
) -> list[Path]:
    """Write issue.html, issue.txt and issue.eml into `directory`; returns their paths."""
    rendered = (renderer or Renderer()).render_issue(view)
    expires = int(time.time()) + settings.link_token_days * 86400
    mailer = IssueMailer(rendered, settings, tag=view.slug, expires_at=expires)
    message = mailer.message(delivery_id=0, subscriber_id=PREVIEW_SUBSCRIBER_ID, email=PREVIEW_READER)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "issue.html", directory / "issue.txt", directory / "issue.eml"]
    paths[0].write_text(message.html, encoding="utf-8")
    paths[1].write_text(message.text, encoding="utf-8")
    paths[2].write_bytes(to_eml(message, datetime.now(UTC)))
    return paths
