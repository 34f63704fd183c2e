"""The one interface every provider adapter implements, and the result it reports per message.

Adapters know nothing of the store: they take messages and return one result per message, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from newsletter.mail import OutgoingMessage


@dataclass(frozen=True, slots=True)
class SendResult:
    """What happened to one message. `permanent` marks a failure that must never be retried."""

    message_id: str
    accepted: bool
    provider_message_id: str | None = None
    error: str | None = None
    permanent: bool = False


class ProviderError(RuntimeError):
    """A whole request failed. `fatal` stops the send (bad credentials); otherwise it may be retried."""

    def __init__(self, message: str, *, fatal: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.fatal = fatal
        self.retry_after = retry_after


class Provider(Protocol):
    name: str
    max_batch: int

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        """Send every message; one result per message, in the same order."""
        ...

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        """For messages whose outcome was never recorded (a crash mid-request): the Message-IDs the
        provider did accept, mapped to its own id. Whatever is missing is safe to send again."""
        ...

    async def aclose(self) -> None: ...
