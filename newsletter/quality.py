"""Quality gates: what must hold for an issue before it may reach an inbox.

The gates read the message exactly as a reader gets it (the preview reader's, with the list headers
and both bodies filled in) and return findings: a gate, a severity, what is wrong and where. An
error stops a send (`newsletter issue send`, the scheduler) unless an editor forces it; a warning is
shown and sends anyway. The same findings fill the preview studio's check panel and
`newsletter issue check`.

This module runs the gates on an issue and says what their findings mean for a send (the report,
what --force may override); the gates themselves are `newsletter.gates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from newsletter.config import Settings
from newsletter.editions import EditionError, issue_view
from newsletter.gates import GATES, Finding, Severity, findings
from newsletter.mail import OutgoingMessage
from newsletter.models import Issue
from newsletter.preview import preview_message
from newsletter.render import Renderer
from newsletter.rendered import RenderedMessage
from newsletter.views import IssueView

# Errors that --force does not override: a clipped email hides its footer, and with it the
# unsubscribe link that every bulk message must show.
UNFORCEABLE = frozenset({"size"})


@dataclass(frozen=True)
class Report:
    """The findings of one check, and the size and message they were found in."""

    findings: tuple[Finding, ...]
    html_bytes: int
    message: OutgoingMessage = field(repr=False)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == Severity.ERROR]

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def unforceable(self) -> list[Finding]:
        """The errors no --force lets through."""
        return [f for f in self.errors if f.gate in UNFORCEABLE]

    def gates(self) -> list[tuple[str, str, list[Finding]]]:
        """(gate, what it holds, its findings) for every gate, passing ones included."""
        return [(name, text, [f for f in self.findings if f.gate == name]) for name, text in GATES.items()]


class GateFailed(EditionError):
    """A gate failed: the issue does not move on. `report` holds the findings."""

    def __init__(
        self,
        week: str,
        report: Report,
        *,
        consequence: str = "nothing was sent",
        override: str = "send anyway",
    ):
        self.report = report
        count = len(report.errors)
        hard = sorted({f.gate for f in report.unforceable})
        advice = (
            f"; --force does not override the {', '.join(hard)} check"
            if hard
            else f" or {override} with --force"
        )
        super().__init__(
            f"issue {week} fails {count} quality check{'s' if count != 1 else ''}; {consequence}. "
            f"Fix the findings (see `newsletter issue check`){advice}."
        )


def enforce(
    report: Report,
    week: str,
    *,
    force: bool,
    consequence: str = "nothing was sent",
    override: str = "send anyway",
) -> None:
    """The one rule for send and approve alike: an error stops the issue unless forced, and the
    errors in UNFORCEABLE stop it even then."""
    if report.unforceable or (report.errors and not force):
        raise GateFailed(week, report, consequence=consequence, override=override)


# --- entry points ------------------------------------------------------------------------------------


def check_issue(
    session: Session, issue: Issue, settings: Settings, renderer: Renderer | None = None
) -> Report:
    """The gates on the issue as composed, rendered the way the send renders it."""
    return check_view(issue_view(session, issue, settings), settings, renderer)


def check_view(view: IssueView, settings: Settings, renderer: Renderer | None = None) -> Report:
    rendered = (renderer or Renderer()).render_issue(view, check_size=False)
    return check_rendered(rendered, settings, view.slug)


def check_rendered(rendered: RenderedMessage, settings: Settings, tag: str) -> Report:
    """The gates on the message as readers get it: with tracked links where tracking is on."""
    message = preview_message(rendered, settings, tag, tracked=True)
    return check_message(message, rendered.preheader, settings)


def require_passing(session: Session, issue: Issue, settings: Settings) -> Report:
    """Raise GateFailed when an error-level gate fails; returns the report (warnings) otherwise."""
    report = check_issue(session, issue, settings)
    enforce(report, issue.week, force=False)
    return report


def check_message(message: OutgoingMessage, preheader: str, settings: Settings) -> Report:
    """Every gate on one message; pure: no store, no network."""
    size = len(message.html.encode())
    return Report(tuple(findings(message, preheader, settings, size)), size, message)
