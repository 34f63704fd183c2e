"""Bounded readers for the fields of a provider's event: each takes whatever JSON gave and returns a
value that fits its column, or None (or raises Unprocessable, for the parts of an event's key).

The bounds are read from the tables, so a column that grows or shrinks moves them with it. JSON is
parsed so that nothing unbounded is built from it: NaN, Infinity and integers of over 40 digits become
`TOO_BIG`, which no reader accepts, and a body nested too deep is a PayloadError.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from newsletter.events.base import PayloadError, Unprocessable
from newsletter.models import ProviderEvent, Subscriber


def _length(table, column: str) -> int:
    return table.__table__.c[column].type.length


EVENT_KEY = _length(ProviderEvent, "event_key")
MESSAGE_ID = _length(ProviderEvent, "provider_message_id")
DETAIL = _length(ProviderEvent, "detail")
EMAIL = _length(Subscriber, "email")
NAME = 100  # an event type, a record type: longer is no name a provider uses
TAG = 200  # an issue tag from metadata: not stored, bounded all the same
ROW_ID_MAX = 2**31 - 1  # row ids are INTEGER columns, four bytes on PostgreSQL
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
AHEAD = timedelta(days=1)  # clocks drift; an event from further ahead is no event of ours
_MAX_DIGITS = 40
_MAX_TIME_TEXT = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # PostgreSQL refuses NUL; UTF-8 has no lone surrogates
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_DIGITS = re.compile("[0-9]*")


class _TooBig:
    """A JSON number we do not hold: NaN, ±Infinity, or an integer of over 40 digits."""

    def __repr__(self) -> str:
        return "TOO_BIG"


TOO_BIG = _TooBig()


def _int(text: str) -> int | _TooBig:
    return int(text) if len(text) <= _MAX_DIGITS else TOO_BIG


def load_json(body: bytes) -> Any:
    """The parsed body; PayloadError if it is not JSON (or is nested past Python's recursion limit)."""
    try:
        return json.loads(body, parse_int=_int, parse_constant=lambda _name: TOO_BIG)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"not JSON: {str(exc)[:200]}") from exc
    except RecursionError as exc:
        raise PayloadError("JSON nested too deep") from exc


def mapping(value: Any) -> Mapping[str, Any]:
    """An object, or an empty one for anything else (a string, a list, null)."""
    return value if isinstance(value, dict) else {}


def name(value: Any) -> str | None:
    """An event or record type as the provider names it; None if it is no name."""
    if isinstance(value, str) and 0 < len(value) <= NAME and not _CONTROL.search(value):
        return value
    return None


def text(value: Any, bound: int = DETAIL) -> str | None:
    """Free text cut to `bound` characters, NUL and lone surrogates replaced; None if not text or
    empty."""
    if not isinstance(value, str) or not value:
        return None
    return _UNSTORABLE.sub("\ufffd", value[:bound])


def identifier(value: Any, bound: int = MESSAGE_ID) -> str | None:
    """An id (a message id) as given, trimmed; None if it is not text, is empty, holds control
    characters, or does not fit `bound`: a cut id would name another message."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > bound or _CONTROL.search(value):
        return None
    return value


def email(value: Any) -> str | None:
    """A recipient address, lower-cased, if it could be a subscriber's; None otherwise."""
    address = identifier(value, EMAIL)
    return address.lower() if address and "@" in address else None


def row_id(value: Any) -> int | None:
    """Our row id as metadata brought it back (an integer or its digits); None if it is not one or is
    outside the INTEGER column's range."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= ROW_ID_MAX:
        return value
    return None


def moment(value: Any, received: datetime) -> datetime:
    """An event's time from epoch seconds or ISO 8601 text, if it lies between 2000 and a day ahead
    of `received`; `received` otherwise."""
    found = None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if EARLIEST.timestamp() <= value <= (received + AHEAD).timestamp():
            found = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str) and 0 < len(value) <= _MAX_TIME_TEXT:
        found = _iso(value)
    if found is None or not EARLIEST <= found <= received + AHEAD:
        return received
    return found


def _iso(value: str) -> datetime | None:
    text = value.strip().replace("Z", "+00:00")
    if "." in text:  # Postmark writes 7 fractional digits; Python reads at most 6
        head, _, rest = text.partition(".")
        digits = _DIGITS.match(rest).group()
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        found = datetime.fromisoformat(text)
        return found.astimezone(UTC) if found.tzinfo else found.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def key_part(value: Any, field: str) -> str:
    """A part of an event's key (an id, a time as the provider wrote it): text or an integer.
    Unprocessable otherwise: without it the event cannot be told from others, or stored once."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise Unprocessable(f"{field} is missing or is not text or an integer")


def optional_key_part(value: Any) -> str:
    try:
        return key_part(value, "")
    except Unprocessable:
        return ""


def event_key(*parts: str) -> str:
    """The key an event is stored once by: its parts joined by ':'. One that is too long for the
    column or holds characters the store refuses is kept readable at its start and made unique by
    a digest of the whole, so a retry of the same event still finds it."""
    key = ":".join(parts)
    if len(key) <= EVENT_KEY and not _UNSTORABLE.search(key):
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    head = _UNSTORABLE.sub("\ufffd", key[: EVENT_KEY - len(digest) - 1])
    return f"{head}#{digest}"


def flag(value: Any) -> bool | None:
    """A provider's yes/no field: True or False as JSON gave it, None for anything else (absent)."""
    return value if isinstance(value, bool) else None


def bot_name(value: Any) -> bool | None:
    """Mailgun's `client-info.bot`: the name of the machine that opened or clicked ("apple",
    "gmail"), "" for a person; None when the field is absent or not text."""
    if not isinstance(value, str):
        return None
    return bool(value.strip())
