"""Quality gates: what must hold for an issue before it may reach an inbox.

The gates read the message exactly as a reader gets it (the preview reader's, with the list headers
and both bodies filled in) and return findings: a gate, a severity, what is wrong and where. An
error stops a send (`newsletter issue send`, the scheduler) unless an editor forces it; a warning is
shown and sends anyway. The same findings fill the preview studio's check panel and
`newsletter issue check`.

UTM tags are required on every content link (the site's own pages and the allowed hosts), not on the
personal action links (unsubscribe, preferences, votes): those are one-button pages that carry a
reader's token, are no landing page worth measuring, and the unsubscribe link must match the
List-Unsubscribe header to the letter.

Tracked links (`/r/…`, NEWSLETTER_TRACKING) all point at the site itself, so the link gates look
through them: each is resolved to the destination the issue's link table gives it, and that is what
must be https, on an allowed host and carry UTM tags. A tracked link the issue does not know is an
error. The hidden decoy link is HTML-only by design: the text-part gate leaves it out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from sqlmodel import Session

from newsletter.config import Settings
from newsletter.editions import EditionError, issue_view
from newsletter.lengths import (
    SUBJECT_WARNING_CHARS,
    preheader_problem,
    preheader_rule,
    subject_problem,
    subject_rule,
)
from newsletter.mail import ONE_CLICK, OutgoingMessage
from newsletter.models import Issue
from newsletter.preview import preview_message
from newsletter.render import GMAIL_CLIP_BYTES, RenderedMessage, Renderer
from newsletter.tracking.links import BadLink, LinkKind, LinkSpec, parse
from newsletter.views import IssueView

SIZE_WARNING_BYTES = 90_000  # close enough to Gmail's clipping that one more comparison tips it over
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
ACTION_PATHS = ("/unsubscribe/", "/preferences/", "/vote/", "/confirm/")
TRACKED_PATHS = ("/r/", "/o/")


class Severity(StrEnum):
    ERROR = "error"  # stops a send
    WARNING = "warning"  # shown, sends anyway


# Every gate with what it holds the issue to, in the order the panel and the CLI show them.
GATES: dict[str, str] = {
    "size": f"HTML under Gmail's clipping size ({GMAIL_CLIP_BYTES // 1000} KB)",
    "links-https": "every link and image an absolute https URL",
    "link-hosts": "links go to the site or an allowed host (NEWSLETTER_ALLOWED_LINK_HOSTS)",
    "utm": "content links carry utm_source, utm_medium and utm_campaign",
    "images": "every image has alt text and a width",
    "no-external": "no external CSS, no @import, no script",
    "lang": "the <html> element names its language",
    "color-scheme": "color-scheme meta for dark mode",
    "preheader": f"a preheader of {preheader_rule()}, hidden at the top of the HTML",
    "text-part": "a plain-text part carrying every link of the HTML",
    "list-unsubscribe": "List-Unsubscribe (https) and List-Unsubscribe-Post headers",
    "subject": f"a subject of {subject_rule()}",
}
# Errors that --force does not override: a clipped email hides its footer, and with it the
# unsubscribe link that every bulk message must show.
UNFORCEABLE = frozenset({"size"})


@dataclass(frozen=True, slots=True)
class Finding:
    gate: str
    severity: Severity
    message: str
    where: str = ""


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
    html, text = message.html, message.text
    page = _Page()
    page.feed(html)
    page.close()
    size = len(html.encode())
    tracked = getattr(getattr(message.content, "rendered", None), "tracked_links", None) or {}
    findings = [
        *_size(size),
        *_links(page, settings, tracked),
        *_images(page),
        *_external(page),
        *_head(page),
        *_preheader(page, preheader),
        *_text_part(page, text, tracked),
        *_list_headers(message),
        *_subject(message.subject),
    ]
    return Report(tuple(findings), size, message)


# --- the gates -----------------------------------------------------------------------------------------


def _size(size: int) -> Iterable[Finding]:
    if size > GMAIL_CLIP_BYTES:
        yield Finding(
            "size",
            Severity.ERROR,
            f"the HTML is {size / 1000:.1f} KB; Gmail clips above {GMAIL_CLIP_BYTES / 1000:.0f} KB and "
            "hides the footer with the unsubscribe link. Pick fewer comparisons or shorten them.",
            "HTML part",
        )
    elif size > SIZE_WARNING_BYTES:
        yield Finding(
            "size",
            Severity.WARNING,
            f"the HTML is {size / 1000:.1f} KB, close to Gmail's {GMAIL_CLIP_BYTES / 1000:.0f} KB clipping",
            "HTML part",
        )


def _links(page: _Page, settings: Settings, tracked: dict[str, LinkSpec]) -> Iterable[Finding]:
    hosts = settings.link_hosts
    site_host = settings.site_host.lower()
    for link in page.links:
        url, kind = link.url, None
        if (spec := _tracked_spec(link.url, site_host, tracked)) is not None:
            if isinstance(spec, str):
                yield Finding("link-hosts", Severity.ERROR, spec, link.where)
                continue
            if spec.kind == LinkKind.OPEN:
                continue  # the pixel: no destination
            url, kind = spec.url, spec.kind
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            yield Finding(
                "links-https",
                Severity.ERROR,
                f"{url!r} is not an absolute https URL",
                link.where,
            )
            continue
        host = parts.hostname.lower()
        if host not in hosts:
            yield Finding(
                "link-hosts",
                Severity.ERROR,
                f"{host} is neither the site ({site_host}) nor an allowed host; add it to "
                "NEWSLETTER_ALLOWED_LINK_HOSTS if it is meant",
                link.where,
            )
            continue
        if link.attribute != "href" or (host == site_host and parts.path.startswith(ACTION_PATHS)):
            continue
        if kind == LinkKind.DECOY:
            continue  # no person follows it: no campaign figure wants it
        query = parse_qs(parts.query)
        missing = [key for key in UTM_KEYS if not query.get(key)]
        if missing:
            yield Finding("utm", Severity.ERROR, f"{url} lacks {', '.join(missing)}", link.where)


def _tracked_spec(url: str, site_host: str, tracked: dict[str, LinkSpec]) -> LinkSpec | str | None:
    """The spec behind a tracked link of the site, a problem (str) if it names none of the issue's
    links, or None for any other link."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() != site_host or not parts.path.startswith(TRACKED_PATHS):
        return None
    try:
        code = parse(parts.path[3:]).code
    except BadLink:
        return f"{url} is a tracked link in no form the site answers"
    spec = tracked.get(code)
    return spec if spec is not None else f"{url} is a tracked link to none of this issue's links"


def _images(page: _Page) -> Iterable[Finding]:
    for image in page.images:
        alt, width = image.attrs.get("alt"), image.attrs.get("width")
        if alt is None:
            yield Finding("images", Severity.ERROR, "an image without alt text", image.where)
        elif not alt.strip() and image.attrs.get("role") != "presentation":
            yield Finding(
                "images",
                Severity.WARNING,
                'empty alt text: right only for a decorative image (then add role="presentation")',
                image.where,
            )
        if width is None or not width.strip().rstrip("px").isdigit():
            yield Finding(
                "images",
                Severity.ERROR,
                "an image without a numeric width attribute (Outlook shows it at its full size)",
                image.where,
            )


def _external(page: _Page) -> Iterable[Finding]:
    for where in page.scripts:
        yield Finding("no-external", Severity.ERROR, "a script: no mail client runs it", where)
    for where in page.stylesheets:
        yield Finding("no-external", Severity.ERROR, "an external stylesheet: mail clients drop it", where)
    for where in page.imports:
        yield Finding("no-external", Severity.ERROR, "a CSS @import: mail clients drop it", where)


def _head(page: _Page) -> Iterable[Finding]:
    lang = (page.lang or "").strip()
    if not lang or lang.lower() == "und":
        yield Finding(
            "lang",
            Severity.ERROR,
            "the <html> element has no language (screen readers guess the pronunciation)",
            "<html>" + (f' lang="{lang}"' if lang else ""),
        )
    if "color-scheme" not in page.metas:
        yield Finding(
            "color-scheme",
            Severity.ERROR,
            'no <meta name="color-scheme">: Apple Mail and others will not apply the dark-mode rules',
            "<head>",
        )
    elif "supported-color-schemes" not in page.metas:
        yield Finding(
            "color-scheme",
            Severity.WARNING,
            'no <meta name="supported-color-schemes"> (older Apple Mail reads only that one)',
            "<head>",
        )


def _preheader(page: _Page, preheader: str) -> Iterable[Finding]:
    if not preheader.strip():
        yield Finding(
            "preheader",
            Severity.ERROR,
            "no preheader: inboxes show the first words of the body instead",
            "issue",
        )
    elif problem := preheader_problem(preheader):
        yield Finding("preheader", Severity.ERROR, problem, "issue")
    elif _squash(preheader) not in _squash(" ".join(page.hidden_text)):
        yield Finding(
            "preheader",
            Severity.ERROR,
            "the preheader is not in a hidden element of the HTML (see partials/preheader.mjml.j2)",
            "HTML <body>",
        )


def _text_part(page: _Page, text: str, tracked: dict[str, LinkSpec]) -> Iterable[Finding]:
    if not text.strip():
        yield Finding(
            "text-part", Severity.ERROR, "no plain-text part: spam filters and text readers need one", "text"
        )
        return
    in_text = set(_TEXT_URL.findall(text))
    reported = set()
    decoys = {code for code, spec in tracked.items() if spec.kind == LinkKind.DECOY}
    for link in page.links:
        if link.attribute != "href" or link.url in in_text or link.url in reported:
            continue
        if decoys and _code_of(link.url) in decoys:
            continue  # the hidden link is HTML-only: a reader of the text part must not meet it
        reported.add(link.url)
        yield Finding(
            "text-part", Severity.ERROR, f"{link.url} is in the HTML but not in the text part", link.where
        )


def _code_of(url: str) -> str | None:
    path = urlsplit(url).path
    if not path.startswith(TRACKED_PATHS):
        return None
    try:
        return parse(path[3:]).code
    except BadLink:
        return None


def _list_headers(message: OutgoingMessage) -> Iterable[Finding]:
    headers = message.list_headers()
    unsubscribe = headers.get("List-Unsubscribe", "")
    if not re.search(r"<https://[^>]+>", unsubscribe):
        yield Finding(
            "list-unsubscribe",
            Severity.ERROR,
            "no List-Unsubscribe header with an https URL (Gmail and Yahoo require one for bulk mail)",
            "headers",
        )
    if headers.get("List-Unsubscribe-Post") != ONE_CLICK:
        yield Finding(
            "list-unsubscribe",
            Severity.ERROR,
            f"no List-Unsubscribe-Post: {ONE_CLICK} header (RFC 8058 one-click)",
            "headers",
        )


def _subject(subject: str) -> Iterable[Finding]:
    length = len(subject.strip())
    if problem := subject_problem(subject):
        yield Finding("subject", Severity.ERROR, problem, "Subject")
    elif length > SUBJECT_WARNING_CHARS:
        yield Finding(
            "subject",
            Severity.WARNING,
            f"the subject has {length} characters; most inboxes cut it at 40 to 80",
            "Subject",
        )


# --- reading the HTML ------------------------------------------------------------------------------------

_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_IMPORT = re.compile(r"@import\b", re.IGNORECASE)
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_VOID = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
)
_URL_ATTRIBUTES = {"href": ("a", "area"), "src": ("img", "source"), "background": ("table", "td", "body")}


@dataclass(frozen=True, slots=True)
class _Link:
    url: str
    attribute: str
    where: str


@dataclass(frozen=True, slots=True)
class _Image:
    attrs: dict[str, str | None]
    where: str


class _Page(HTMLParser):
    """One pass over the HTML collecting what the gates look at, each with its line for `where`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.metas: dict[str, str] = {}
        self.links: list[_Link] = []
        self.images: list[_Image] = []
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.imports: list[str] = []
        self.hidden_text: list[str] = []
        self._open: list[tuple[str, bool]] = []  # (tag, hidden)
        self._anchor: list[str] | None = None
        self._anchor_start: tuple[int, str] | None = None
        self._in_style = False

    def _where(self, tag: str, detail: str = "") -> str:
        return f"HTML line {self.getpos()[0]}: <{tag}>" + (f" {detail}" if detail else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        elif tag == "meta" and values.get("name"):
            self.metas[str(values["name"]).lower()] = values.get("content") or ""
        elif tag == "script":
            self.scripts.append(self._where(tag, values.get("src") or "(inline)"))
        elif tag == "link" and values.get("href"):
            self.stylesheets.append(self._where(tag, str(values["href"])))
        elif tag == "img":
            self.images.append(_Image(values, self._where(tag, str(values.get("src") or ""))))
        elif tag == "style":
            self._in_style = True
        for attribute, tags in _URL_ATTRIBUTES.items():
            url = values.get(attribute)
            if tag in tags and url is not None:
                if tag == "a":
                    self._anchor, self._anchor_start = [], (len(self.links), self._where(tag))
                self.links.append(_Link(url.strip(), attribute, self._where(tag, str(url))))
        if tag not in _VOID:
            parent_hidden = bool(self._open) and self._open[-1][1]
            self._open.append((tag, parent_hidden or bool(_HIDDEN.search(values.get("style") or ""))))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag == "a" and self._anchor is not None and self._anchor_start is not None:
            index, where = self._anchor_start
            label = " ".join(" ".join(self._anchor).split())[:60]
            link = self.links[index]
            self.links[index] = _Link(link.url, link.attribute, f"{where} “{label}”" if label else where)
            self._anchor = self._anchor_start = None
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth][0] == tag:
                del self._open[depth:]
                break

    def handle_data(self, data: str) -> None:
        if self._in_style and _IMPORT.search(data):
            self.imports.append(f"HTML line {self.getpos()[0]}: <style>")
        if self._anchor is not None:
            self._anchor.append(data)
        if self._open and self._open[-1][1]:
            self.hidden_text.append(data)


def _squash(text: str) -> str:
    return " ".join(text.split())
