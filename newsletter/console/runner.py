"""`Send now` from the console: the same send as `newsletter issue send`, run on a thread of the
console's process. The ledger stays the truth of how far it got (the live page reads it, whoever
sends); this only remembers how the console's own run ended, to say so on the page.

The send takes the issue's lease like every other sender, so a send already running elsewhere (the
CLI, the scheduler, a worker) refuses this one, and this one refuses them. Stopping the console lets
the batches in flight finish and leaves the rest queued for a rerun, as SIGTERM does for the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.delivery import SendAborted, Sender
from newsletter.editions import EditionError
from newsletter.providers import Provider, make_provider

log = logging.getLogger("newsletter.console")


@dataclass
class Run:
    """How the console's own send of an issue is doing: `running`, `done` or `failed`."""

    issue_id: int
    editor: str
    started: float
    state: str = "running"
    message: str = ""


class SendRunner:
    """At most one console send per issue at a time, each on its own thread."""

    def __init__(
        self,
        engine: Engine | None,
        settings: Settings,
        provider_factory: Callable[[Settings], Provider] = make_provider,
    ):
        self.engine, self.settings, self.provider_factory = engine, settings, provider_factory
        self._runs: dict[int, Run] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self, issue_id: int, editor: str) -> Run:
        """Start sending `issue_id`; EditionError if this console is already sending it."""
        if self.engine is None:
            raise EditionError("there is no store to send from")
        with self._lock:
            current = self._runs.get(issue_id)
            if current is not None and current.state == "running":
                raise EditionError("this console is sending that issue already")
            run = self._runs[issue_id] = Run(issue_id, editor, time.time())
            thread = threading.Thread(target=self._send, args=(run,), name=f"send-{issue_id}", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return run

    def run_of(self, issue_id: int) -> Run | None:
        with self._lock:
            return self._runs.get(issue_id)

    def _send(self, run: Run) -> None:
        provider = self.provider_factory(self.settings)
        sender = Sender(self.engine, self.settings, provider)

        async def go():
            try:
                return await sender.send(run.issue_id, stop=self._stop)
            finally:
                await provider.aclose()

        try:
            report = asyncio.run(go())
        except SendAborted as exc:
            self._end(
                run,
                "failed",
                f"The send stopped: {exc}. The readers not yet sent to are still "
                "queued: fix the cause and send again, or cancel the issue.",
            )
        except EditionError as exc:
            self._end(run, "failed", f"The send did not start: {exc}.")
        except Exception as exc:  # a bug: logged with its traceback, said on the page in one line
            log.exception("the console's send of issue %s failed", run.issue_id)
            self._end(run, "failed", f"The send failed unexpectedly ({type(exc).__name__}); see the log.")
        else:
            message = (
                f"Sent {report.sent} in {report.seconds:.1f} s; failed {report.failed_total}, suppressed "
                f"{report.suppressed_total}; {report.previously_sent} already had it."
            )
            if report.stopped:
                message = "The console stopped mid-send; the rest is queued for the next send."
            self._end(run, "done", message)
            log.info("console send of %s by %s: %s", report.week, run.editor, message)

    def _end(self, run: Run, state: str, message: str) -> None:
        with self._lock:
            run.state, run.message = state, message

    def shutdown(self, timeout: float = 60) -> None:
        """Ask running sends to stop after their batches in flight, and wait for them."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
