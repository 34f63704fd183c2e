"""What a person-written string may hold before it is stored or put in an email: shared by the
comparison import and the settings.

Text: no control character (NUL, escape, DEL, C1; a multi-line field may hold tabs and line breaks)
and no lone surrogate (half of a UTF-16 pair, which no database can store as UTF-8). An https URL,
strictly (RFC 3986, ASCII): `https://`, a host name of letters, digits and hyphens, an optional port,
then only the characters a URL may hold, with `%` always followed by two hex digits and never
escaping a control character. Every function returns the problem in a few words, or None.
"""

from __future__ import annotations

import re
import unicodedata

ALLOWED_IN_MULTILINE = frozenset("\t\n\r")
_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_URL_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#]|%[0-9A-Fa-f]{2})*")
_ESCAPED_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_URL = re.compile(r"https://(?P<authority>[^/?#]*)(?P<tail>[/?#].*)?", re.DOTALL)
MAX_HOST_CHARS = 253


def _code(character: str) -> str:
    return f"U+{ord(character):04X}"


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be stored as text: a control character or a lone surrogate, named with
    its position."""
    for position, character in enumerate(value, 1):
        category = unicodedata.category(character)
        if category == "Cs":
            return f"holds a lone surrogate ({_code(character)}) at character {position}; not valid text"
        if category == "Cc" and not (multiline and character in ALLOWED_IN_MULTILINE):
            kind = "a line break" if character in "\r\n" else "a control character"
            return f"holds {kind} ({_code(character)}) at character {position}; remove it"
        if not multiline and category in ("Zl", "Zp"):
            return f"holds a line separator ({_code(character)}) at character {position}; remove it"
    return None


def https_url_problem(value: str, *, site: bool = False) -> str | None:
    """Why `value` is not an absolute https URL we would put in an email. `site`: a base URL
    (NEWSLETTER_SITE_URL), so no query and no fragment either."""
    if problem := text_problem(value):
        return problem
    for position, character in enumerate(value, 1):
        if character.isspace():
            return f"holds a space ({_code(character)}) at character {position}; percent-encode it (%20)"
        if not character.isascii():
            return f"holds {character!r} at character {position}; percent-encode non-ASCII characters"
    match = _URL.fullmatch(value)
    if match is None:
        return "must be an absolute https:// link"
    authority, tail = match["authority"], match["tail"] or ""
    if "@" in authority:
        return "must not carry a user name or password"
    host, colon, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    if not host or len(host) > MAX_HOST_CHARS or not _HOST.fullmatch(host):
        return "has no valid host name (letters, digits, hyphens and dots) after https://"
    if colon and not (port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        return "has a port that is not a number from 1 to 65535"
    if not _URL_CHARS.fullmatch(tail):
        return (
            'holds a character a URL cannot (write % only as a %XX escape; no <, >, ", {, }, |, \\, ^ or `)'
        )
    if _ESCAPED_CONTROL.search(tail):
        return "percent-escapes a control character (%00 to %1F, %7F)"
    if site and ("?" in tail or "#" in tail):
        return "must be a base URL, without a ?query or #fragment"
    return None
