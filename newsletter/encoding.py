"""Wire encodings of a body, done once per issue instead of once per reader.

A personalised body is literal parts with a reader's values between them. Every encoding here is
local, so the encoded literals can be cached per issue and a reader's body is a join of those with
their few encoded values:

* quoted-printable for the .eml form (`to_eml`), joined through soft line breaks;
* JSON string contents for the providers' HTTP APIs, joined as they are.

Encoding 100 KB per reader was the single largest cost of a send (about 0.5 ms for JSON and 0.8 ms
for quoted-printable, against ~15 us for the whole personalisation).
"""

from __future__ import annotations

import binascii
import json
import re
from typing import Protocol

CRLF = b"\r\n"
_JSON_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII without " and \
QP_LINE = 76  # RFC 2045: encoded lines of at most 76 characters, a soft break's "=" included
SOFT_BREAK = b"=\r\n"


class EncodedTemplate(Protocol):
    def fill(self, values: list[str]) -> bytes: ...

    def parts(self, values: list[str]) -> list[bytes]:
        """The pieces whose join is `fill(values)`."""
        ...


class Codec(Protocol):
    name: str

    def encode(self, text: str) -> bytes:
        """The whole text, encoded."""
        ...

    def template(self, literals: list[str]) -> EncodedTemplate:
        """The literals encoded once, ready to be joined with values."""
        ...


class QuotedPrintableCodec:
    name = "quoted-printable"

    def encode(self, text: str) -> bytes:
        """UTF-8, CRLF line ends, lines of at most 76 characters, trailing spaces encoded."""
        return _qp_segment(text, room=QP_LINE)

    def template(self, literals: list[str]) -> QuotedPrintableTemplate:
        return QuotedPrintableTemplate(literals)


class JsonStringCodec:
    """The inside of a JSON string (no quotes), UTF-8, as `json.dumps(..., ensure_ascii=False)` writes it."""

    name = "json-string"

    def encode(self, text: str) -> bytes:
        if _JSON_PLAIN.fullmatch(text):  # tokens, addresses: nothing to escape
            return text.encode()
        return json.dumps(text, ensure_ascii=False)[1:-1].encode()

    def template(self, literals: list[str]) -> JoinTemplate:
        return JoinTemplate([self.encode(literal) for literal in literals], self.encode)

    def quoted(self, text: str) -> bytes:
        """A whole JSON string, quotes included."""
        if _JSON_PLAIN.fullmatch(text):
            return b'"' + text.encode() + b'"'
        return json.dumps(text, ensure_ascii=False).encode()


QUOTED_PRINTABLE = QuotedPrintableCodec()
JSON_STRING = JsonStringCodec()


class JoinTemplate:
    """Encoded literals joined with encoded values: right for any encoding that is local."""

    __slots__ = ("_encode", "_literals")

    def __init__(self, literals: list[bytes], encode):
        self._literals, self._encode = literals, encode

    def fill(self, values: list[str]) -> bytes:
        return b"".join(self.parts(values))

    def parts(self, values: list[str]) -> list[bytes]:
        """`fill(values)` before the join: the shared literals with the reader's encoded values between
        them. A request body can be streamed from these without a 100 KB copy per reader."""
        _check(values, self._literals)
        encoded = {value: self._encode(value) for value in set(values)}  # a reader's few values, many slots
        out = [b""] * (2 * len(self._literals) - 1)  # filled by slices: a third cheaper than a loop
        out[0::2] = self._literals
        out[1::2] = [encoded[value] for value in values]
        return out


def _check(values: list[str], literals: list) -> None:
    if len(values) != len(literals) - 1:
        raise ValueError(f"{len(values)} values for {len(literals) - 1} slots")


def _qp_segment(text: str, *, room: int) -> bytes:
    """Encode `text`; its last line keeps at most `room` characters (75 leaves space for a soft break)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).replace(b"\n", CRLF)
    # b2a_qp writes 78 characters when it encodes a trailing space on a full line; break those too.
    lines = encoded.split(CRLF)
    out: list[bytes] = []
    for index, line in enumerate(lines):
        limit = room if index == len(lines) - 1 else QP_LINE
        while len(line) > limit:
            cut = limit - 1
            while cut > 0 and b"=" in line[max(cut - 2, 0) : cut]:
                cut -= 1  # never split an =XX escape
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    return CRLF.join(out)


class QuotedPrintableTemplate:
    """Literal parts encoded once; `fill` joins them with encoded values through soft line breaks.

    Decoding gives literal0 + value0 + literal1 + ..., exactly as if the whole text were encoded, and
    no line exceeds 76 characters: each segment's last line leaves room for the soft break's "=".
    """

    __slots__ = ("_literals",)

    def __init__(self, literals: list[str]):
        last = len(literals) - 1
        self._literals = [
            _qp_segment(lit, room=QP_LINE if i == last else QP_LINE - 1) for i, lit in enumerate(literals)
        ]

    def fill(self, values: list[str]) -> bytes:
        return b"".join(self.parts(values))

    def parts(self, values: list[str]) -> list[bytes]:
        _check(values, self._literals)
        out = [self._literals[0]]
        for value, literal in zip(values, self._literals[1:], strict=True):
            out += [SOFT_BREAK, _qp_segment(value, room=QP_LINE - 1), SOFT_BREAK, literal]
        return out
