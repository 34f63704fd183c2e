"""The `outbox` provider: one RFC 5322 .eml file per message in a local directory, no account needed.

Files are written atomically (a temporary file, then rename) under a name fixed by the message's
delivery, so a resend after a crash replaces the same file and a reader never gets two.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from newsletter.mail import OutgoingMessage, to_eml
from newsletter.providers.base import SendResult

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
INLINE_WRITES = 4


class OutboxProvider:
    name = "outbox"
    max_batch = 1000
    default_batch = 500

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path_for(self, message: OutgoingMessage) -> Path:
        """`outbox/<tag>/<message-id local part>.eml`: one file per delivery, whatever happens."""
        local = message.message_id.strip("<>").split("@", 1)[0]
        return self.directory / _UNSAFE.sub("_", message.tag) / f"{_UNSAFE.sub('_', local)}.eml"

    def write(self, message: OutgoingMessage, sent_at: datetime | None = None) -> Path:
        path = self.path_for(message)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(to_eml(message, sent_at or datetime.now(UTC)))
        os.replace(temporary, path)
        return path

    def _send_all(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        now = datetime.now(UTC)
        results = []
        for message in messages:
            try:
                path = self.write(message, now)
            except OSError as exc:
                results.append(SendResult(message.message_id, accepted=False, error=f"cannot write: {exc}"))
            else:
                results.append(SendResult(message.message_id, accepted=True, provider_message_id=str(path)))
        return results

    async def send_batch(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        if len(messages) <= INLINE_WRITES:
            # A confirmation email or two: a thread hop costs more than the write, and a thread
            # waiting for the GIL slows every request behind it.
            return self._send_all(messages)
        return await asyncio.to_thread(self._send_all, messages)

    async def reconcile(self, messages: Sequence[OutgoingMessage]) -> dict[str, str | None]:
        """A file that exists was written whole (rename is atomic), so it counts as sent."""
        return {m.message_id: str(self.path_for(m)) for m in messages if self.path_for(m).is_file()}

    async def aclose(self) -> None:
        return None
