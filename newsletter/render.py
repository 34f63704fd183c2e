"""Templates -> MJML -> HTML (+ premailer) and plain text, once per issue; then cheap personalisation.

The templates never see a reader. Where a reader's value belongs (the token in their links, their
address in the footer) they write a marker holding a random per-render nonce, so no content can forge
one. After the single MJML compile the output is split at the markers, and personalising a message is
a join of prepared strings: no MJML, no Jinja, no premailer per reader.

Content links (the comparisons, the web version, the site) are markers too, each naming a `LinkSpec`:
the render fills them with the plain URLs, and `RenderedMessage.with_links` makes the tracked
variant of the same render once per issue (see `newsletter.tracking.links`), still split at the
reader markers only.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from newsletter import links
from newsletter.encoding import Codec, EncodedTemplate
from newsletter.lazy_imports import defer
from newsletter.tracking.links import LinkKind, LinkSpec
from newsletter.views import ComparisonView, IssueView, Masthead

READER_FIELDS = ("token", "email")
SLOTS = ("decoy", "pixel")  # where the tracked variant puts its hidden link and its open pixel
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


class RenderError(RuntimeError):
    """A template produced something that cannot be sent (invalid MJML, a clipped size)."""


class Personalisable:
    """Compiled text split at reader-field markers; `fill` joins the parts with one reader's values."""

    __slots__ = ("_encoded", "_parts", "_slots", "fields")

    def __init__(self, text: str, marker: re.Pattern[str]):
        pieces = marker.split(text)  # literal, field, literal, field, ..., literal
        self._parts = pieces
        self._slots = tuple((index, pieces[index]) for index in range(1, len(pieces), 2))
        self.fields = frozenset(name for _, name in self._slots)
        self._encoded: dict[str, EncodedTemplate] = {}

    def fill(self, values: Mapping[str, str]) -> str:
        parts = self._parts.copy()
        for index, name in self._slots:
            parts[index] = values[name]
        return "".join(parts)

    def fill_encoded(self, values: Mapping[str, str], codec: Codec) -> bytes:
        """`fill(values)` already in `codec`'s encoding: the literal parts are encoded once per issue,
        so a reader costs a join instead of encoding 100 KB again."""
        return b"".join(self.encoded_parts(values, codec))

    def encoded_parts(self, values: Mapping[str, str], codec: Codec) -> list[bytes]:
        """`fill_encoded(values, codec)` before the join: the issue's encoded literals (shared by every
        reader) with this reader's encoded values between them."""
        template = self._encoded.get(codec.name)
        if template is None:
            template = self._encoded[codec.name] = codec.template(self._parts[0::2])
        return template.parts([values[name] for _, name in self._slots])

    def with_placeholders(self, placeholder: Callable[[str], str]) -> str:
        """The text with each field written in a provider's own substitution syntax."""
        return self.fill({name: placeholder(name) for name in self.fields})

    @property
    def size(self) -> int:
        """Bytes of UTF-8 without reader values, the figure to hold against Gmail's clipping limit."""
        return sum(len(part.encode()) for index, part in enumerate(self._parts) if index % 2 == 0)


@dataclass(frozen=True)
class RenderedMessage:
    """The body of one kind of email (an issue, a confirmation), compiled once, to be personalised.

    `links` are the content links of the render (plain in `html` and `text`); `tracked_links` maps
    the code of each tracked link to its spec in a variant made by `with_links` (empty otherwise)."""

    subject: str
    preheader: str
    html: Personalisable
    text: Personalisable
    links: tuple[LinkSpec, ...] = ()
    tracked_links: Mapping[str, LinkSpec] = field(default_factory=dict)
    source: _Source | None = field(default=None, repr=False, compare=False)

    def personalise(self, *, token: str, email: str) -> tuple[str, str]:
        """(html, text) for one reader."""
        content = self.for_reader(token=token, email=email)
        return content.html, content.text

    def for_reader(self, *, token: str, email: str) -> ReaderContent:
        return ReaderContent(self, token, email)

    @property
    def token_marker(self) -> str:
        """What stands for the reader's token in a URL given to `with_links`."""
        if self.source is None:
            raise RenderError("this message was not rendered with link markers")
        return _marker(self.source.nonce, "token")

    def with_links(
        self,
        url_for: Callable[[LinkSpec], str],
        *,
        slots: Mapping[str, str] | None = None,
        tracked: Mapping[str, LinkSpec] | None = None,
    ) -> RenderedMessage:
        """The same render with each content link replaced by `url_for(spec)` (which may hold
        `token_marker`) and HTML put into the named `slots` ("decoy", "pixel"). One regex pass over
        each part, once per issue variant: readers still cost one join."""
        if self.source is None:
            raise RenderError("this message was not rendered with link markers")
        urls = [url_for(spec) for spec in self.links]
        html_out, text = self.source.fill(urls, slots or {})
        marker = _marker_pattern(self.source.nonce)
        return RenderedMessage(
            self.subject,
            self.preheader,
            Personalisable(html_out, marker),
            Personalisable(text, marker),
            self.links,
            dict(tracked or {}),
            self.source,
        )

    def bodies_with(self, placeholder: Callable[[str], str]) -> tuple[str, str]:
        """(html, text) with each reader field written in a provider's substitution syntax, for
        providers that fill in per-recipient values themselves (the body then travels once per batch).
        The HTML asks for `email_html` (escaped) and the text for `email`; see `ReaderContent.values`."""
        html_names = {"token": "token", "email": "email_html"}
        return (
            self.html.fill({name: placeholder(html_names[name]) for name in self.html.fields}),
            self.text.fill({name: placeholder(name) for name in self.text.fields}),
        )


@dataclass(frozen=True)
class _Source:
    """The compiled parts with their link and slot markers still in, for `with_links`."""

    nonce: str
    html: str
    text: str

    def fill(self, urls: list[str], slots: Mapping[str, str]) -> tuple[str, str]:
        pattern = _link_pattern(self.nonce)

        def in_html(match: re.Match[str]) -> str:
            if match[1] is not None:
                return html.escape(urls[int(match[1])], quote=True)
            return slots.get(match[2], "")

        def in_text(match: re.Match[str]) -> str:
            return urls[int(match[1])] if match[1] is not None else ""

        return pattern.sub(in_html, self.html), pattern.sub(in_text, self.text)


class ReaderContent:
    """One reader's bodies, joined when read: a provider serialises a batch one message at a time, so
    only one full body is alive at once instead of a batch of them (which costs more in page faults
    than the joins themselves)."""

    __slots__ = ("_email", "_rendered", "_token")

    def __init__(self, rendered: RenderedMessage, token: str, email: str):
        self._rendered, self._token, self._email = rendered, token, email

    @property
    def rendered(self) -> RenderedMessage:
        return self._rendered

    def values(self) -> dict[str, str]:
        """This reader's values for `RenderedMessage.bodies_with` placeholders."""
        return {
            "token": self._token,
            "email": self._email,
            "email_html": html.escape(self._email, quote=True),
        }

    @property
    def html(self) -> str:
        """The address is HTML-escaped for the HTML part."""
        return self._rendered.html.fill({"token": self._token, "email": html.escape(self._email, quote=True)})

    @property
    def text(self) -> str:
        return self._rendered.text.fill({"token": self._token, "email": self._email})

    def encoded(self, part: str, codec: Codec) -> bytes:
        """The `html` or `text` body in `codec`'s wire encoding (see `encoding`)."""
        return b"".join(self.encoded_parts(part, codec))

    def encoded_parts(self, part: str, codec: Codec) -> list[bytes]:
        """`encoded(part, codec)` before the join (see `Personalisable.encoded_parts`)."""
        if part == "html":
            escaped = html.escape(self._email, quote=True)
            return self._rendered.html.encoded_parts({"token": self._token, "email": escaped}, codec)
        return self._rendered.text.encoded_parts({"token": self._token, "email": self._email}, codec)


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
            "button_url": link(_marker(nonce, "token")),
            "reader_email": _marker(nonce, "email"),
        }
        return self._compile("email/notice", context, nonce, notice.subject, notice.preheader)

    def render_letter(
        self, template: str, subject: str, preheader: str, context: Callable[[Callable[[str], str]], dict]
    ) -> RenderedMessage:
        """A short email to a reader on the list (the welcome, the re-engagement question) from
        `email/<template>`. `context(marker)` builds the template's context, where `marker("token")`
        and `marker("email")` stand for the reader's token and address (see `newsletter.letters`)."""
        nonce = secrets.token_hex(6)
        built = context(lambda name: _marker(nonce, name))
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
        marker = _marker_pattern(nonce)
        specs = tuple(book.specs) if book else ()
        source = _Source(nonce, html_out, text)
        plain_html, plain_text = source.fill([spec.url for spec in specs], {})
        return RenderedMessage(
            subject,
            preheader,
            Personalisable(plain_html, marker),
            Personalisable(plain_text, marker),
            specs,
            {},
            source,
        )

    def issue_context(self, issue: IssueView, nonce: str, book: _LinkBook | None = None) -> dict:
        """The issue template's context. Every content link goes through `book` (a marker per link);
        without one (a bench, a test of the template) links are written plain."""
        site = issue.masthead.site_url
        token = _marker(nonce, "token")
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
            "reader_email": _marker(nonce, "email"),
            "unsubscribe_url": links.unsubscribe_url(site, token),
            "preferences_url": links.preferences_url(site, token),
            "web_url": link(LinkSpec(LinkKind.WEB, web, "web version")),
            "site_url": link(LinkSpec(LinkKind.SITE, home, "the site")),
            "vote_url": vote_url,
            "comparison_url": comparison_url,
            "scorecard_url": scorecard_url,
            "excerpt": issue.masthead.scorecard == "excerpt",
            "intro": intro_line(issue.comparisons),
            "slot": {name: _marker(nonce, name) for name in SLOTS} if book else dict.fromkeys(SLOTS, ""),
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
        return _marker(self.nonce, f"link{index}")


def compile_mjml(source: str) -> str:
    """MJML -> HTML, then premailer inlines the template's own `premailer:inline` style block.

    Every other style block (MJML's resets, its column widths and media queries, dark mode) is left
    alone: inlining MJML's `table, td {...}` reset into every cell would add a third to the size for
    clients that read head styles anyway. Configured around premailer's two known defects.
    """
    defer("requests")  # premailer imports it for external stylesheets: never fetched (allow_network=False)
    from premailer import Premailer

    try:
        compiled = _module_attribute("mjml2html")(source, fonts={}, disable_comments=True)
    except ValueError as exc:
        raise RenderError(f"the email template is not valid MJML: {exc}") from exc
    inlined = Premailer(
        _STYLE_BLOCK.sub(_mark_head_only, compiled),
        keep_style_tags=True,  # media queries and dark-mode rules must survive
        strip_important=False,  # else the mobile overrides lose to inline styles and nothing stacks
        allow_network=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    ).transform()
    inlined = inlined.replace(f" {_IGNORE}", "").replace(INLINE_MARK, "")
    if not inlined.lstrip().lower().startswith("<!doctype"):
        inlined = "<!doctype html>\n" + inlined  # premailer drops MJML's lower-case doctype (upstream #156)
    return inlined


def _module_attribute(name: str):
    """`name` as this module holds it (a test may have replaced it), loaded on first use."""
    return globals().get(name) or __getattr__(name)


def __getattr__(name: str):
    """The MJML compiler, imported when first asked for rather than with this module."""
    if name == "mjml2html":
        from mjml import mjml2html

        globals()[name] = mjml2html
        return mjml2html
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


INLINE_MARK = "/* premailer:inline */"
_IGNORE = 'data-premailer="ignore"'
_STYLE_BLOCK = re.compile(r"<style([^>]*)>(.*?)</style>", re.DOTALL)


def _mark_head_only(match: re.Match[str]) -> str:
    if match[2].lstrip().startswith(INLINE_MARK):
        return match[0]
    return f"<style {_IGNORE}{match[1]}>{match[2]}</style>"


def _marker(nonce: str, field: str) -> str:
    return f"%%{nonce}.{field}%%"


def _marker_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile(rf"%%{nonce}\.({'|'.join(READER_FIELDS)})%%")


def _link_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile(rf"%%{nonce}\.(?:link(\d+)|({'|'.join(SLOTS)}))%%")


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


def week_label(monday: date) -> str:
    """`23–29 November 2026`, `30 November – 6 December 2026`, `28 December 2026 – 3 January 2027`."""
    sunday = monday + timedelta(days=6)
    if monday.year != sunday.year:
        return f"{monday.day} {monday:%B %Y} – {sunday.day} {sunday:%B %Y}"
    if monday.month != sunday.month:
        return f"{monday.day} {monday:%B} – {sunday.day} {sunday:%B %Y}"
    return f"{monday.day}–{sunday.day} {sunday:%B %Y}"


def intro_line(comparisons: tuple[ComparisonView, ...]) -> str:
    if not comparisons:
        return ""
    count = len(comparisons)
    most_split = max(comparisons, key=lambda c: c.split)
    head = "One comparison this week." if count == 1 else f"{count} comparisons this week."
    if most_split.split > 0:
        return f"{head} The panel split hardest on {most_split.title}."
    return f"{head} The panel agreed on every tool."


def default_subject(comparisons: tuple[ComparisonView, ...] | list[ComparisonView]) -> str:
    """The lead comparison, and how many more verdicts follow."""
    if not comparisons:
        return "This week's AI tool verdicts"
    lead, rest = comparisons[0].title, len(comparisons) - 1
    if rest == 0:
        return f"{lead}: the panel's verdict"
    return f"{lead}, plus {rest} more verdict{'s' if rest > 1 else ''}"


def default_preheader(comparisons: tuple[ComparisonView, ...] | list[ComparisonView]) -> str:
    """The lead's panel figures, then the other titles: what a reader sees beside the subject."""
    if not comparisons:
        return ""
    lead = comparisons[0]
    left, right = lead.left, lead.right
    text = f"Panel: {left.name} {left.panel.label} ship, {right.name} {right.panel.label} ship."
    others = [c.title for c in comparisons[1:]]
    if others:
        text += " Also: " + "; ".join(others) + "."
    return text if len(text) <= 200 else text[:199].rstrip() + "…"


def masthead_from(settings) -> Masthead:
    return Masthead(
        name=settings.name,
        site_url=settings.site_url,
        postal_address=settings.postal_address,
        scorecard=settings.scorecard,
    )
