"""What every provider's webhook shares: the normalised event, the errors, and the base class.

A provider module (`events/<provider>.py`) subclasses `WebhookProvider`: `verify` checks the request
is the provider's, `events_in` finds the events in its body, `normalise` reads one event through the
bounded readers of `events.fields`. The rule for what a request may contain, the same for every
provider (the README's "Events from the provider" says it too):

* Not from the provider (no or a bad signature, a timestamp that is not whole seconds or is over
  five minutes off, the provider's secret not configured): 401, nothing changes.
* Verified, but the body is not the provider's JSON shape (not JSON, nested too deep, not the
  top-level object or array the provider posts): 400, nothing changes.
* Inside a verified body every event is read field by field, and nothing reaches the store unbounded:
  - an optional field that is unusable (the wrong type, an identifier that does not fit its column or
    holds control characters, an id outside the column's integer range) is dropped: a bad delivery id
    becomes None and the event is tied to its delivery by message id and recipient instead;
  - free text (details, links, reasons) is cut to its column's length, with NUL and lone surrogates
    replaced by U+FFFD;
  - a time that is not a time, or is before 2000 or over a day ahead, becomes the time we received it;
  - an event whose type or key is unusable is *unprocessable*: it is counted in the answer, named in
    a warning log line (its place in the batch and the field, never a value or a secret), and the
    other events of the same request are stored. The answer is 200, so the provider stops retrying:
    a retry of a malformed event would fail the same way for days.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from newsletter.models import EventKind

if TYPE_CHECKING:
    from newsletter.config import Settings

log = logging.getLogger("newsletter.events")

TOLERANCE_SECONDS = 5 * 60
PROBLEMS_KEPT = 20
_WHOLE_SECONDS = re.compile(r"[0-9]{1,12}")


class SignatureError(Exception):
    """The request is not from the provider (or is too old); the message says which check failed."""


class PayloadError(ValueError):
    """The body is not a payload of this provider; the message says what is wrong."""


class Unprocessable(ValueError):
    """One event of a verified body cannot be stored; the message names the field, never its value."""


@dataclass(frozen=True)
class NormalisedEvent:
    """One provider event in our vocabulary, every field already bounded to its column.

    New facts about an event (whether a machine rather than a reader opened it, say) are new fields
    with a default, so providers that cannot tell leave them alone.
    """

    provider: str
    event_key: str
    kind: EventKind
    recipient: str | None
    occurred_at: datetime
    provider_message_id: str | None = None
    delivery_id: int | None = None
    issue: str | None = None
    detail: str | None = None
    machine: bool | None = None  # the provider says a machine opened or clicked (None: it cannot tell)


@dataclass(frozen=True)
class Verified:
    """A request that passed the provider's check: its parsed body and, where the signature carries
    one, the request's own id (Svix's message id, Mailgun's token)."""

    data: Any
    request_id: str | None = None


@dataclass
class Received:
    """What a request held: the events to store, how many could not be read, and why (the first
    few: a batch of a million bad events must not make a million reasons)."""

    events: list[NormalisedEvent] = field(default_factory=list)
    unprocessable: int = 0
    problems: list[str] = field(default_factory=list)

    def refuse(self, problem: str) -> None:
        self.unprocessable += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(problem)


class WebhookProvider(ABC):
    """One provider's webhook: its signature check, where its events are, and how each is read."""

    name: ClassVar[str]

    def receive(self, settings: Settings, headers: Mapping[str, str], body: bytes) -> Received:
        """Verify, then read every event; SignatureError (401) or PayloadError (400) for the request."""
        return self.read(self.verify(settings, headers, body))

    def read(self, verified: Verified) -> Received:
        received = Received()
        for place, item in enumerate(self.events_in(verified), start=1):
            try:
                received.events.append(self.normalise(item, verified))
            except Unprocessable as exc:
                received.refuse(f"event {place}: {exc}")
            except Exception:  # a reading bug must not block the provider's stream: log it, go on
                log.exception("%s webhook: event %d could not be read", self.name, place)
                received.refuse(f"event {place}: could not be read")
        return received

    @abstractmethod
    def verify(self, settings: Settings, headers: Mapping[str, str], body: bytes) -> Verified:
        """Check the request is the provider's and parse its body; SignatureError or PayloadError."""

    def events_in(self, verified: Verified) -> list[Any]:
        """The events in the body; by default the body is one event, a JSON object."""
        if not isinstance(verified.data, dict):
            raise PayloadError(f"a {self.name} webhook posts one JSON object")
        return [verified.data]

    @abstractmethod
    def normalise(self, item: Any, verified: Verified) -> NormalisedEvent:
        """One event in our vocabulary; Unprocessable if its type or key cannot be read."""


def header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise SignatureError(f"missing {name} header")


def fresh(timestamp: object, now: float | None = None, tolerance: int = TOLERANCE_SECONDS) -> int:
    """A signature's timestamp as whole seconds, refused unless it is within `tolerance` of now.

    Only plain digits pass: `float()` would let in "nan" (which compares as fresh), "1e9" or "1.5",
    and `int()` would let in "+1", " 1", "1_0" or other scripts' digits.
    """
    text = str(timestamp) if isinstance(timestamp, int) and not isinstance(timestamp, bool) else timestamp
    if not isinstance(text, str) or not _WHOLE_SECONDS.fullmatch(text):
        raise SignatureError("timestamp is not whole seconds")
    if abs((time.time() if now is None else now) - int(text)) > tolerance:
        raise SignatureError("timestamp is outside the accepted window")
    return int(text)
