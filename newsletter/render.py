"""Templates -> MJML -> HTML (+ premailer) and plain text, once per issue; then cheap personalisation.

The templates never see a reader: where a reader's value belongs they write a marker, and content
links are markers naming their `LinkSpec` (see `newsletter.rendered`, which splits the output at the
markers so that personalising a message is a join). One Jinja render per part and one MJML compile
(`newsletter.mjml_html`) per message kind; the issue's default words are `newsletter.issue_words`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from newsletter import links
from newsletter.issue_words import intro_line, week_label
from newsletter.mjml_html import compile_mjml
from newsletter.rendered import (
    SLOTS,
    MarkedSource,
    Personalisable,
    RenderedMessage,
    RenderError,
    marker,
    marker_pattern,
)
from newsletter.tracking.links import LinkKind, LinkSpec
from newsletter.views import ComparisonView, IssueView, Masthead, masthead_from  # noqa: F401  (masthead_from: its old home)

GMAIL_CLIP_BYTES = 102_000  # Gmail clips a larger HTML part; counted in decimal KB to be safe
SCORECARD_ANCHOR = "scorecard"  # the id of the scorecard on a comparison's page
_PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
_REPO_TEMPLATES = Path(__file__).parent.parent / "templates"


def templates_dir() -> Path:
    """Templates inside an installed wheel, else the repository's `templates/` (editable installs)."""
    return _PACKAGE_TEMPLATES if _PACKAGE_TEMPLATES.is_dir() else _REPO_TEMPLATES


@dataclass(frozen=True)
class Notice:
    """The words of a one-button transactional email."""

    subject: str
    preheader: str
    heading: str
    paragraphs: tuple[str, ...]
    button: str
    footnote: str


class Renderer:
    """Owns the Jinja environments and the MJML and premailer steps."""

    def __init__(self, directory: Path | None = None, *, remember: bool = False):
        """`remember`: render each distinct IssueView once and hand the same RenderedMessage back
        (a send checks the issue, then renders the same view for its readers). Off for long-lived
        renderers, whose views change."""
        # The template stack loads with the first Renderer, not with this module: the commands that
        # only need the issue's words (`issue show`, composing) never pay for Jinja, MJML or premailer.
        from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

        self.directory = directory or templates_dir()
        self._remembered: dict[IssueView, RenderedMessage] | None = {} if remember else None
        self.env = Environment(
            loader=FileSystemLoader(self.directory),
            # Autoescape everywhere except plain-text parts, where HTML entities would be wrong text.
            autoescape=select_autoescape(
                disabled_extensions=("txt.j2",), default_for_string=True, default=True
            ),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["wrap"] = _wrap
        self.env.filters["verdict_word"] = lambda verdict: "Ship" if verdict == "ship" else "Skip"

    def render_issue(self, issue: IssueView, *, check_size: bool = True) -> RenderedMessage:
        """The issue's bodies, compiled once. `check_size=False` is for the editors' preview and the
        quality gates, which show an oversized issue with its size rather than refuse to show it."""
        rendered = self._remembered.get(issue) if self._remembered is not None else None
        if rendered is None:
            nonce = secrets.token_hex(6)
            book = _LinkBook(nonce)
            rendered = self._compile(
                "email/issue",
                self.issue_context(issue, nonce, book),
                nonce,
                issue.subject,
                issue.preheader,
                book,
            )
            if self._remembered is not None:
                self._remembered[issue] = rendered
        if check_size and rendered.html.size > GMAIL_CLIP_BYTES:
            raise RenderError(
                f"the HTML is {rendered.html.size:,} bytes; Gmail clips above {GMAIL_CLIP_BYTES:,} "
                "and would hide the footer and unsubscribe link. Pick fewer comparisons."
            )
        return rendered

    def render_notice(
        self, notice: Notice, masthead: Masthead, link: Callable[[str], str]
    ) -> RenderedMessage:
        """A one-button transactional email (confirm, manage); `link(token)` builds the button's URL."""
        nonce = secrets.token_hex(6)
        context = {
            "notice": notice,
            "masthead": masthead,
            "button_url": link(marker(nonce, "token")),
            "reader_email": marker(nonce, "email"),
        }
        return self._compile("email/notice", context, nonce, notice.subject, notice.preheader)

    def render_letter(
        self, template: str, subject: str, preheader: str, context: Callable[[Callable[[str], str]], dict]
    ) -> RenderedMessage:
        """A short email to a reader on the list (the welcome, the re-engagement question) from
        `email/<template>`. `context(marker)` builds the template's context, where `marker("token")`
        and `marker("email")` stand for the reader's token and address (see `newsletter.letters`)."""
        nonce = secrets.token_hex(6)
        built = context(lambda name: marker(nonce, name))
        return self._compile(f"email/{template}", built, nonce, subject, preheader)

    def _compile(
        self,
        template: str,
        context: dict,
        nonce: str,
        subject: str,
        preheader: str,
        book: _LinkBook | None = None,
    ) -> RenderedMessage:
        """One Jinja render per part and one MJML compile, split at the reader markers; content
        links (from `book`) are filled with their plain URLs, the slots left empty."""
        html_out = compile_mjml(self.env.get_template(f"{template}.mjml.j2").render(context))
        text = self.env.get_template(f"{template}.txt.j2").render(context)
        fields = marker_pattern(nonce)
        specs = tuple(book.specs) if book else ()
        source = MarkedSource(nonce, html_out, text)
        plain_html, plain_text = source.fill([spec.url for spec in specs], {})
        return RenderedMessage(
            subject,
            preheader,
            Personalisable(plain_html, fields),
            Personalisable(plain_text, fields),
            specs,
            {},
            source,
        )

    def issue_context(self, issue: IssueView, nonce: str, book: _LinkBook | None = None) -> dict:
        """The issue template's context. Every content link goes through `book` (a marker per link);
        without one (a bench, a test of the template) links are written plain."""
        site = issue.masthead.site_url
        token = marker(nonce, "token")
        campaign = issue.slug
        link = book or (lambda spec: spec.url)

        def vote_url(comparison: ComparisonView, tool_slug: str, verdict: str) -> str:
            return links.vote_url(site, token, comparison.slug, tool_slug, verdict)

        def comparison_url(comparison: ComparisonView) -> str:
            url = links.with_utm(comparison.url, campaign=campaign, content=comparison.slug)
            return link(LinkSpec(LinkKind.COMPARISON, url, comparison.title, comparison.slug))

        def scorecard_url(comparison: ComparisonView) -> str:
            """The comparison page's scorecard, where an excerpt's quotes can be read in full."""
            page = urlsplit(comparison.url)._replace(fragment=SCORECARD_ANCHOR).geturl()
            url = links.with_utm(page, campaign=campaign, content=f"{comparison.slug}-scorecard")
            label = f"{comparison.title}: full scorecard"
            return link(LinkSpec(LinkKind.SCORECARD, url, label, comparison.slug))

        web = links.with_utm(links.issue_url(site, issue.slug), campaign=campaign, content="web-version")
        home = links.with_utm(site, campaign=campaign, content="footer")
        return {
            "issue": issue,
            "masthead": issue.masthead,
            "date_label": week_label(issue.week_start),
            "week_number": issue.week_start.isocalendar().week,
            "reader_email": marker(nonce, "email"),
            "unsubscribe_url": links.unsubscribe_url(site, token),
            "preferences_url": links.preferences_url(site, token),
            "web_url": link(LinkSpec(LinkKind.WEB, web, "web version")),
            "site_url": link(LinkSpec(LinkKind.SITE, home, "the site")),
            "vote_url": vote_url,
            "comparison_url": comparison_url,
            "scorecard_url": scorecard_url,
            "excerpt": issue.masthead.scorecard == "excerpt",
            "intro": intro_line(issue.comparisons),
            "slot": {name: marker(nonce, name) for name in SLOTS} if book else dict.fromkeys(SLOTS, ""),
        }


class _LinkBook:
    """The content links of one render, each written as a marker that names it."""

    def __init__(self, nonce: str):
        self.nonce = nonce
        self.specs: list[LinkSpec] = []
        self._index: dict[LinkSpec, int] = {}

    def __call__(self, spec: LinkSpec) -> str:
        index = self._index.get(spec)
        if index is None:
            index = self._index[spec] = len(self.specs)
            self.specs.append(spec)
        return marker(self.nonce, f"link{index}")


def _wrap(text: str, width: int = 72, indent: str = "") -> str:
    """Wrap prose for the plain-text part, keeping the author's paragraphs.

    A greedy wrap that never breaks a word (a long URL stays whole); textwrap does the same work
    about ten times slower, and the text part is re-wrapped for every issue.
    """
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    return "\n\n".join(_wrap_paragraph(p.split(), width, indent) for p in paragraphs)


_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def _wrap_paragraph(words: list[str], width: int, indent: str) -> str:
    lines: list[str] = []
    line: list[str] = []
    length = len(indent)
    for word in words:
        if line and length + 1 + len(word) > width:
            lines.append(indent + " ".join(line))
            line, length = [], len(indent)
        length += len(word) + (1 if line else 0)
        line.append(word)
    if line:
        lines.append(indent + " ".join(line))
    return "\n".join(lines)
