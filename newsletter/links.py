"""Every URL the product puts in an email, in one place, so emails and web routes agree on them."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

UTM_SOURCE = "weekly-ai-tool-verdicts"
UTM_MEDIUM = "email"


def unsubscribe_url(site_url: str, token: str) -> str:
    """GET shows a one-button page; POST (RFC 8058 one-click) unsubscribes at once."""
    return f"{site_url}/unsubscribe/{token}"


def confirm_url(site_url: str, token: str) -> str:
    """GET shows one Confirm button; only the POST activates (link scanners only GET)."""
    return f"{site_url}/confirm/{token}"


def preferences_url(site_url: str, token: str) -> str:
    return f"{site_url}/preferences/{token}"


def stay_url(site_url: str, token: str) -> str:
    """The re-engagement question's one button: GET shows it, only the POST keeps the reader."""
    return f"{site_url}/stay/{token}"


def vote_url(site_url: str, token: str, comparison_slug: str, tool_slug: str, verdict: str) -> str:
    """GET shows the comparison and one button; only the POST records the vote."""
    return f"{site_url}/vote/{token}/{comparison_slug}/{tool_slug}/{verdict}"


def comparison_page_url(site_url: str, comparison_slug: str) -> str:
    return f"{site_url}/compare/{comparison_slug}"


def issue_url(site_url: str, issue_slug: str) -> str:
    """The public web version of an issue, without any reader's personal links."""
    return f"{site_url}/issues/{issue_slug}"


def with_utm(url: str, *, campaign: str, content: str | None = None) -> str:
    """`url` with UTM tags added; tags already on the link are kept as they are."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    tags = {"utm_source": UTM_SOURCE, "utm_medium": UTM_MEDIUM, "utm_campaign": campaign}
    if content:
        tags["utm_content"] = content
    for key, value in tags.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query)))
