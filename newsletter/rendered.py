"""A render, split at its reader markers: personalising a message is a join of prepared strings.

The templates never see a reader. Where a reader's value belongs (the token in their links, their
address in the footer) they write a marker holding a random per-render nonce, so no content can forge
one; the compiled output is split at the markers (`Personalisable`), and one reader's bodies are the
parts joined with their values (`ReaderContent`), or encoded once per issue and joined as bytes.

Content links are markers too, each naming a `LinkSpec`: `RenderedMessage.with_links` fills them
(plain, or tracked) once per issue variant from the `MarkedSource` the render kept. `newsletter.render`
makes these from the templates.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from newsletter.encoding import Codec, EncodedTemplate
from newsletter.tracking.links import LinkSpec

READER_FIELDS = ("token", "email")
SLOTS = ("decoy", "pixel")  # where the tracked variant puts its hidden link and its open pixel


class RenderError(RuntimeError):
    """A template produced something that cannot be sent (invalid MJML, a clipped size)."""


class Personalisable:
    """Compiled text split at reader-field markers; `fill` joins the parts with one reader's values."""

    __slots__ = ("_encoded", "_parts", "_slots", "fields")

    def __init__(self, text: str, markers: re.Pattern[str]):
        pieces = markers.split(text)  # literal, field, literal, field, ..., literal
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
    source: MarkedSource | None = field(default=None, repr=False, compare=False)

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
        return marker(self.source.nonce, "token")

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
        fields = marker_pattern(self.source.nonce)
        return RenderedMessage(
            self.subject,
            self.preheader,
            Personalisable(html_out, fields),
            Personalisable(text, fields),
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
class MarkedSource:
    """The compiled parts with their link and slot markers still in, for `with_links`."""

    nonce: str
    html: str
    text: str

    def fill(self, urls: list[str], slots: Mapping[str, str]) -> tuple[str, str]:
        pattern = link_pattern(self.nonce)

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


def marker(nonce: str, field: str) -> str:
    return f"%%{nonce}.{field}%%"


def marker_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile(rf"%%{nonce}\.({'|'.join(READER_FIELDS)})%%")


def link_pattern(nonce: str) -> re.Pattern[str]:
    return re.compile(rf"%%{nonce}\.(?:link(\d+)|({'|'.join(SLOTS)}))%%")
