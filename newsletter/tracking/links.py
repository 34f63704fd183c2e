"""Tracked links: every content link of an issue becomes `https://<site>/r/<token>`.

A token is `<issue>.<code>.<mac>.<reader token>`:

* `issue` is the issue's id in base 36, `code` names one link of it: a hash of the link's kind and
  URL, so the same link has the same code in every readers' variant of an issue, whichever process
  renders it;
* `mac` is an HMAC over issue, code and the expiry of the issue's reader tokens. It is made once per
  issue and link, never per reader: a reader's cost stays their one token, joined in like today;
* the reader token is the one every personal link of the message already carries (`tokens.Signer`).

The redirect checks both MACs and that the reader token's expiry is the one the link part was made
for, so a reader token from another issue (or a confirmation email) never passes with this issue's
links; then it looks the code up in the issue's link table (written before the issue went out), so
only links the issue really contained can be reached. Nothing in a token is ever a URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from enum import StrEnum

LINK_MAC_BYTES = 12  # 96 bits: no online guessing gets near it; 16 characters in the URL
MAX_TOKEN_CHARS = 160
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE36 = re.compile(r"[0-9a-z]{1,13}")
_MAC = re.compile(r"[A-Za-z0-9_-]{16}")


class LinkKind(StrEnum):
    """What a tracked link of an issue is."""

    COMPARISON = "comparison"  # a comparison's page (its button)
    SCORECARD = "scorecard"  # a comparison's full scorecard (NEWSLETTER_SCORECARD=excerpt)
    WEB = "web"  # the issue's web version
    SITE = "site"  # the site's home
    OTHER = "other"
    DECOY = "decoy"  # hidden from people and assistive technology: only machines follow it
    OPEN = "open"  # the open-tracking pixel (NEWSLETTER_TRACKING=clicks+opens)


class BadLink(ValueError):
    """A tracked link that is not one of ours: malformed, tampered, or from another issue or site."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """One link an issue carries: what it is and where it leads."""

    kind: str
    url: str
    label: str = ""
    comparison: str | None = None

    @property
    def code(self) -> str:
        return link_code(self.kind, self.url)


@dataclass(frozen=True, slots=True)
class ParsedToken:
    issue_id: int
    code: str
    mac: str
    reader_token: str


def b36(number: int) -> str:
    if number == 0:
        return "0"
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_B36[rest])
    return "".join(reversed(digits))


def link_code(kind: str, url: str) -> str:
    """56 bits of SHA-256 over kind and URL, in base 36 (at most 11 characters)."""
    digest = hashlib.sha256(f"{kind}\x00{url}".encode()).digest()
    return b36(int.from_bytes(digest[:7], "big"))


class LinkSigner:
    """Makes and checks the issue-and-link part of tracked tokens; its key is derived, never raw."""

    def __init__(self, key: bytes):
        self._key = hashlib.sha256(b"newsletter/tracked-links/v1\x00" + key).digest()

    def mac(self, issue_id: int, code: str, expires_at: int) -> str:
        message = f"link|{b36(issue_id)}|{code}|{b36(expires_at)}".encode()
        digest = hmac.digest(self._key, message, "sha256")[:LINK_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).decode()

    def link_part(self, issue_id: int, code: str, expires_at: int) -> str:
        return f"{b36(issue_id)}.{code}.{self.mac(issue_id, code, expires_at)}"

    def matches(self, parsed: ParsedToken, expires_at: int) -> bool:
        """Whether the link part was made for the issue whose reader tokens expire at `expires_at`."""
        return hmac.compare_digest(parsed.mac, self.mac(parsed.issue_id, parsed.code, expires_at))


def parse(token: str) -> ParsedToken:
    """The parts of a tracked token, checked for shape only; BadLink("malformed") otherwise."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise BadLink("malformed")
    parts = token.split(".")
    if len(parts) != 6:
        raise BadLink("malformed")
    issue_text, code, mac = parts[0], parts[1], parts[2]
    if not (_BASE36.fullmatch(issue_text) and _BASE36.fullmatch(code) and _MAC.fullmatch(mac)):
        raise BadLink("malformed")
    if b36(int(issue_text, 36)) != issue_text:
        raise BadLink("malformed")  # one spelling per issue: no leading zeros
    return ParsedToken(int(issue_text, 36), code, mac, ".".join(parts[3:]))


def tracked_url(site_url: str, link_part: str, reader_token: str) -> str:
    return f"{site_url}/r/{link_part}.{reader_token}"


def pixel_url(site_url: str, link_part: str, reader_token: str) -> str:
    return f"{site_url}/o/{link_part}.{reader_token}"


def decoy_spec(site_url: str) -> LinkSpec:
    """The hidden link: it leads to the site's home (without UTM tags: no campaign figure wants it)."""
    return LinkSpec(LinkKind.DECOY, f"{site_url}/", "hidden link (only machines follow it)")


def open_spec() -> LinkSpec:
    return LinkSpec(LinkKind.OPEN, "", "open pixel")


def decoy_markup(url: str) -> str:
    """A link no person sees and no assistive technology announces: hidden by `display:none` on the
    link and its box (and `mso-hide` for Outlook), out of the tab order, `aria-hidden`, with no text
    and no size, so even a client that drops the styles shows nothing. Machines that fetch every
    href of a message fetch it."""
    return (
        '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all" aria-hidden="true">'
        f'<a href="{html.escape(url, quote=True)}" tabindex="-1" aria-hidden="true" '
        'style="display:none;font-size:0;line-height:0"></a></div>'
    )


def pixel_markup(url: str) -> str:
    """The open pixel: a 1x1 image, decorative to assistive technology."""
    return (
        f'<img src="{html.escape(url, quote=True)}" width="1" height="1" alt="" role="presentation" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
