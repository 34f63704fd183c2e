"""The `outbox` provider: one RFC 5322 .eml file per message in a local directory, no account needed.

Files are written atomically (a temporary file, then rename) under a name fixed by the message's
delivery, so a resend after a crash replaces the same file and a reader never gets two.

A disk that cannot be written (read-only, full, a file where a directory belongs) is the outbox's
"bad API key": nothing after it would work either, so it is fatal for the send (the rest stays
queued, the message names the directory and the error), and no temporary file is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from newsletter.mail import OutgoingMessage, to_eml
from newsletter.providers.base import Failure, ProviderError, SendResult

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
        """Write one message atomically; OSError as the disk gives it, with no temporary file left."""
        path = self.path_for(message)
        _write_atomically(path, to_eml(message, sent_at or datetime.now(UTC)))
        return path

    async def preflight(self, tag: str) -> None:
        """Before a send changes anything: the issue's directory can be made and written."""
        probe = self.directory / _UNSAFE.sub("_", tag) / f".probe.{os.getpid()}"
        try:
            _write_atomically(probe, b"probe")
            probe.unlink()
        except OSError as exc:
            raise disk_error(probe.parent, exc) from exc

    def _send_all(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        now = datetime.now(UTC)
        results = []
        for message in messages:
            try:
                path = self.write(message, now)
            except OSError as exc:
                error = disk_error(self.path_for(message).parent, exc)
                error.completed = dict(enumerate(results))
                raise error from exc
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


def disk_error(directory: Path, exc: OSError) -> ProviderError:
    """A write that failed, as a fatal provider error naming the directory and the disk's words."""
    code = errno.errorcode.get(exc.errno or 0, "")
    reason = exc.strerror or str(exc)
    return ProviderError(
        f"outbox: cannot write to {directory}: {reason}" + (f" ({code})" if code else ""),
        failure=Failure.FATAL,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
        os.replace(temporary, path)
    except BaseException:
        # The disk that refused the write may refuse this too; then it never held the file.
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
