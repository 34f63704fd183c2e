"""What one run of a send did (`SendReport`, the closing summary and the progress), and how a send
that stopped as a whole says so (`SendAborted`): shared by the send engine, the CLI, the console and
the scheduler, none of which needs the engine itself to read them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class SendAborted(RuntimeError):
    """The send stopped as a whole (a bad key, an unverified sender, a disk that cannot be written):
    the rest of the queue is kept for a later `newsletter issue send`. The message says why; `report`
    says what was done before it stopped."""

    def __init__(self, message: str, report: SendReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class SendReport:
    """What one run of `send` did, for the closing summary."""

    week: str
    sent: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    reconciled: int = 0
    retries: int = 0
    stopped: bool = False  # a shutdown asked it to stop: in-flight batches finished, the rest queued
    previously_sent: int = 0
    seconds: float = 0.0
    aborted: str | None = None
    owed: int = 0  # rows queued or in flight when this run began
    recovered: int = 0  # rows a dead sender left in flight that the provider confirmed it had sent

    @property
    def settled(self) -> int:
        """Rows this run brought to an end state (sent, failed or suppressed): what progress shows."""
        return self.sent + self.recovered + self.failed_total + self.suppressed_total

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def suppressed_total(self) -> int:
        return sum(self.suppressed.values())
