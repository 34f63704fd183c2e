"""The quality gates one by one: each reads the message as a reader gets it and yields findings (a
gate, a severity, what is wrong and where). Pure: no store, no network. `newsletter.quality` runs
them on an issue and decides what the findings mean for a send.

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
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from newsletter.config import Settings
from newsletter.email_page import EmailPage
from newsletter.lengths import (
    SUBJECT_WARNING_CHARS,
    preheader_problem,
    preheader_rule,
    subject_problem,
    subject_rule,
)
from newsletter.mail import ONE_CLICK, OutgoingMessage
from newsletter.render import GMAIL_CLIP_BYTES
from newsletter.tracking.links import BadLink, LinkKind, LinkSpec, parse

SIZE_WARNING_BYTES = 90_000  # close enough to Gmail's clipping that one more comparison tips it over
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
ACTION_PATHS = ("/unsubscribe/", "/preferences/", "/vote/", "/confirm/")
TRACKED_PATHS = ("/r/", "/o/")
_TEXT_URL = re.compile(r"https?://[^\s<>\"')\]]+")


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


@dataclass(frozen=True, slots=True)
class Finding:
    gate: str
    severity: Severity
    message: str
    where: str = ""


def findings(message: OutgoingMessage, preheader: str, settings: Settings, size: int) -> list[Finding]:
    """Every gate's findings on one message whose HTML is `size` bytes, in the order of GATES."""
    page = EmailPage.read(message.html)
    tracked = getattr(getattr(message.content, "rendered", None), "tracked_links", None) or {}
    return [
        *_size(size),
        *_links(page, settings, tracked),
        *_images(page),
        *_external(page),
        *_head(page),
        *_preheader(page, preheader),
        *_text_part(page, message.text, tracked),
        *_list_headers(message),
        *_subject(message.subject),
    ]


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


def _links(page: EmailPage, settings: Settings, tracked: dict[str, LinkSpec]) -> Iterable[Finding]:
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
    code = _code_of(url)
    if code is None:
        return f"{url} is a tracked link in no form the site answers"
    spec = tracked.get(code)
    return spec if spec is not None else f"{url} is a tracked link to none of this issue's links"


def _images(page: EmailPage) -> Iterable[Finding]:
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


def _external(page: EmailPage) -> Iterable[Finding]:
    for where in page.scripts:
        yield Finding("no-external", Severity.ERROR, "a script: no mail client runs it", where)
    for where in page.stylesheets:
        yield Finding("no-external", Severity.ERROR, "an external stylesheet: mail clients drop it", where)
    for where in page.imports:
        yield Finding("no-external", Severity.ERROR, "a CSS @import: mail clients drop it", where)


def _head(page: EmailPage) -> Iterable[Finding]:
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


def _preheader(page: EmailPage, preheader: str) -> Iterable[Finding]:
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


def _text_part(page: EmailPage, text: str, tracked: dict[str, LinkSpec]) -> Iterable[Finding]:
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


def _squash(text: str) -> str:
    return " ".join(text.split())
