"""Reader tokens never reach a log line.

A token in a link (see newsletter/tokens.py) unsubscribes, exports or erases its reader for months,
and the access log would print every one it served. `RedactTokens` is a logging filter for the
handlers of `newsletter serve` and `newsletter preview` (see `newsletter.web.server`): it replaces,
in the message, its arguments, the formatted traceback and the stack,

- the path segment after /confirm/, /unsubscribe/, /preferences/, /vote/, /stay/, /r/ and /o/, whatever
  it holds
  (a tampered or half-typed token too), and
- anything of a token's shape anywhere (a query, a message), also with its characters or dots
  percent-encoded, as a client may send them,

with `<token>`. Messages stay readable: the route, the status and every other value remain.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

REDACTED = "<token>"
TOKEN_PATHS = ("confirm", "unsubscribe", "preferences", "vote", "stay", "r", "o")
_B36 = r"(?:[0-9A-Za-z]|%[0-9A-Fa-f]{2})"
_MAC = r"(?:[0-9A-Za-z_-]|%[0-9A-Fa-f]{2})"
_DOT = r"(?:\.|%2[Ee])"
# <subject>.<expiry>.<mac>: base 36 of up to 13 characters each, and 18 bytes of URL-safe base64.
TOKEN_SHAPE = re.compile(rf"{_B36}{{1,13}}{_DOT}{_B36}{{1,13}}{_DOT}{_MAC}{{24}}")
TOKEN_SEGMENT = re.compile(rf"(/(?:{'|'.join(TOKEN_PATHS)})/)[^/?#\s\"'<>]+")
_formatter = logging.Formatter()


def redact(text: str) -> str:
    """`text` with every reader token in it replaced by `<token>`."""
    return TOKEN_SHAPE.sub(REDACTED, TOKEN_SEGMENT.sub(rf"\1{REDACTED}", text))


def _redacted_value(value: object) -> object:
    """A log argument with tokens redacted; numbers stay numbers (for %d), other objects stay
    themselves unless their text holds a token."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, int | float):
        return value
    text = str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactTokens(logging.Filter):
    """Redact reader tokens in every record a handler emits; never drops a record.

    The arguments are redacted one by one, so formatters that read them (uvicorn's access log takes
    the path from them) keep working; if the message template itself holds a token, the record is
    collapsed into its redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = {key: _redacted_value(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted_value(value) for value in record.args)
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            message = None  # a broken format: logging reports it itself
        if message is not None and redact(message) != message:
            record.msg, record.args = redact(message), ()
        colored = record.__dict__.get("color_message")  # uvicorn's coloured variant of the template
        if isinstance(colored, str) and redact(colored) != colored:
            del record.__dict__["color_message"]
        if record.exc_info and not record.exc_text:
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
