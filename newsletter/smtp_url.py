"""`NEWSLETTER_SMTP_URL`, parsed by hand so that a password never breaks the parse or reaches a message.

`urllib.parse` splits the authority at the first `/`, `?` or `#`, so a password holding one of them
(common in generated passwords) turned the rest into a path and its first part into a "port" that the
error then quoted. Here the credentials end at the *last* `@`, the user name ends at the first `:`, and
both are percent-decoded (write `%25` for a literal `%`). Errors name the variable and what is wrong,
never a part of the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
EXPECTED = "smtp://[user:password@]host[:port], smtp+starttls://... or smtps://..."
_HOST_PORT = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(?P<port>\d{1,5}))?"
)


@dataclass(frozen=True)
class SmtpUrl:
    scheme: str
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def masked(self) -> str:
        """The URL for messages and logs: the password replaced by `***`."""
        credentials = f"{self.user}:***@" if self.user else ""
        return f"{self.scheme}://{credentials}{self.host}:{self.port}"


def parse_smtp_url(text: str) -> SmtpUrl:
    """Parse `text`; ValueError (naming NEWSLETTER_SMTP_URL, quoting none of it) when it is not one."""
    scheme, separator, rest = text.strip().partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in SCHEMES:
        raise ValueError(
            f"NEWSLETTER_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://; expected {EXPECTED}"
        )
    credentials, at, location = rest.rpartition("@")
    location = location.removesuffix("/")
    match = _HOST_PORT.fullmatch(location)
    if not match:
        raise ValueError(
            f"NEWSLETTER_SMTP_URL has no valid host[:port] after the credentials; expected {EXPECTED} "
            "(percent-encode a password's special characters if in doubt)"
        )
    port = int(match["port"]) if match["port"] else SCHEMES[scheme]
    if not 0 < port < 65536:
        raise ValueError("NEWSLETTER_SMTP_URL has a port out of range (1-65535)")
    host = match["host"].strip("[]")
    if not at:
        return SmtpUrl(scheme, host, port)
    user, _, password = credentials.partition(":")
    if not user:
        raise ValueError(f"NEWSLETTER_SMTP_URL has credentials without a user name; expected {EXPECTED}")
    return SmtpUrl(scheme, host, port, unquote(user), unquote(password) if password else None)


def mask_smtp_url(text: str) -> str:
    """`text` fit for a message: masked if it parses, else a placeholder (it may be all password)."""
    try:
        return parse_smtp_url(text).masked()
    except ValueError:
        return "(the SMTP URL)"
