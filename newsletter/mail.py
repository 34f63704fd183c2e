"""The outgoing message, as providers receive it, and its RFC 5322 form (.eml).

Every header value has been checked before it arrives (see `headers`): the To address is a validated
ASCII subscriber address, the subject an editor's single line, the From a validated setting. Writing
the .eml checks again, so a line break can never open a header of its own.

The .eml is written by hand rather than through `email.message.EmailMessage`: the stdlib's pure-Python
quoted-printable encoder and generator take about 6 ms for a 100 KB issue, and the outbox writes one
file per reader; the bodies come pre-encoded (see `encoding`). The tests parse every file back with
the stdlib's parser.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from typing import Protocol

from newsletter.encoding import QUOTED_PRINTABLE, Codec
from newsletter.headers import check_header_value

ONE_CLICK = "List-Unsubscribe=One-Click"
CRLF = b"\r\n"


class Content(Protocol):
    """The two bodies of a message. A personalised body may be built on each access (see
    `rendered.ReaderContent`), so a batch of messages does not hold a batch of 100 KB strings.
    It may also offer `encoded(part, codec) -> bytes`: a body already in a wire encoding, built from
    parts encoded once per issue."""

    @property
    def html(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class FixedContent:
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to one reader, ready for any provider."""

    sender: str
    to: str
    subject: str
    content: Content
    message_id: str
    tag: str
    unsubscribe_url: str | None = None  # list mail only; a confirmation email has none
    list_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def html(self) -> str:
        return self.content.html

    @property
    def text(self) -> str:
        return self.content.text

    @property
    def idempotency_key(self) -> str:
        """Stable per delivery: a retried request carries the same key and the provider drops the copy."""
        return self.message_id.strip("<>")

    def list_headers(self) -> dict[str, str]:
        """The bulk-mail headers Gmail and Yahoo require (RFC 2369, RFC 8058) and the list's id (RFC 2919)."""
        headers = {}
        if self.unsubscribe_url:
            headers["List-Unsubscribe"] = f"<{self.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = ONE_CLICK
        if self.list_id:
            headers["List-Id"] = self.list_id
        return headers


def encoded_body(message: OutgoingMessage, part: str, codec: Codec) -> bytes:
    """`part` ("html" or "text") of the message in `codec`'s encoding, the cheap way when offered."""
    encoded = getattr(message.content, "encoded", None)
    if encoded is not None:
        return encoded(part, codec)
    return codec.encode(message.html if part == "html" else message.text)


def encoded_body_parts(message: OutgoingMessage, part: str, codec: Codec) -> list[bytes]:
    """`encoded_body` as pieces to be written one after another: a personalised body's pieces are
    the issue's encoded literals, shared by every reader, and the reader's few values."""
    parts = getattr(message.content, "encoded_parts", None)
    if parts is not None:
        return parts(part, codec)
    return [codec.encode(message.html if part == "html" else message.text)]


def make_message_id(tag: str, delivery_id: int, domain: str) -> str:
    """Deterministic per delivery, so a resent copy of the same delivery is recognisably the same message."""
    return f"<{tag}.{delivery_id}@{domain}>"


def to_eml(message: OutgoingMessage, sent_at: datetime) -> bytes:
    """The message as multipart/alternative (text, then HTML) in RFC 5322 form with CRLF line ends."""
    # QP output never contains "=_" (a literal "=" is written "=3D"), so this boundary cannot collide.
    boundary = "=_alt_" + hashlib.blake2b(message.message_id.encode(), digest_size=12).hexdigest()
    headers = [
        ("From", _address(message.sender)),
        ("To", _address(message.to)),
        ("Subject", _unstructured(message.subject)),
        ("Date", format_datetime(sent_at)),
        ("Message-ID", message.message_id),
        *((name, _unstructured(value)) for name, value in message.list_headers().items()),
        ("X-Newsletter-Tag", message.tag),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    out = [f"{name}: {check_header_value(value, field=name)}".encode("ascii") for name, value in headers]
    out.append(b"")
    for subtype, part in (("plain", "text"), ("html", "html")):
        body = encoded_body(message, part, QUOTED_PRINTABLE)
        out += [
            f"--{boundary}".encode(),
            f'Content-Type: text/{subtype}; charset="utf-8"'.encode(),
            b"Content-Transfer-Encoding: quoted-printable",
            b"",
            body,
        ]
    out += [f"--{boundary}--".encode(), b""]
    return CRLF.join(out)


def _unstructured(value: str) -> str:
    """ASCII as is; anything else as RFC 2047 encoded words (at most 75 characters each)."""
    check_header_value(value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n", maxlinelen=76).replace("\r\n", " ")


def _address(value: str) -> str:
    name, address = parseaddr(check_header_value(value, field="address"))
    if not name:
        return address
    return formataddr((name, address), charset="utf-8").replace("\n ", " ").replace("\r\n ", " ")
