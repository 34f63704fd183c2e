"""The sender killed with SIGKILL in the middle of a send, then run again: every reader exactly once.

The emulator accepts each request's messages and then waits before answering, so the kill lands in
the window that matters: the provider has the messages, the ledger does not know it yet.
"""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import policy

import pytest
from sqlmodel import Session, select

from newsletter.db import make_engine
from newsletter.models import Delivery
from tests.commands import newsletter
from tests.conftest import TEST_KEY
from tests.databases import clean_env, database_url
from tests.emulator_server import running_emulator

READERS = [f"crash{n}@example.com" for n in range(240)]


def cli(directory, env, *args, check=True):
    result = newsletter(directory, env, *args, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def statuses(directory) -> Counter:
    with Session(make_engine(database_url(directory))) as session:
        return Counter(session.exec(select(Delivery.status)).all())


def delivered(provider, emulator, directory) -> Counter:
    if provider == "outbox":
        return Counter(
            email.message_from_bytes(p.read_bytes(), policy=policy.default)["To"]
            for p in (directory / "outbox").glob("*/*.eml")
        )
    return Counter(emulator.counts())


def progress(provider, emulator, directory) -> int:
    if provider == "outbox":
        return len(list((directory / "outbox").glob("*/*.eml")))
    return sum(emulator.counts().values())


def kill_when(process, reached, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while reached() < at_least:
        assert process.poll() is None, "the sender finished before it could be killed"
        assert time.monotonic() < deadline, "the send made no progress"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("provider", ["postmark", "resend", "outbox"])
def test_sigkill_mid_send_then_rerun_delivers_to_everyone_exactly_once(tmp_path, provider):
    with running_emulator() as emulator:
        env = clean_env(tmp_path)
        env |= {
            "NEWSLETTER_SECRET_KEY": TEST_KEY,
            "NEWSLETTER_SEND_BATCH_SIZE": "20",
            "NEWSLETTER_SEND_CONCURRENCY": "2",
            "COLUMNS": "250",
        }
        env |= emulator.provider_env(provider) if provider != "outbox" else {"NEWSLETTER_PROVIDER": "outbox"}
        cli(tmp_path, env, "init", "--sample")
        (tmp_path / "list.csv").write_text("email\n" + "\n".join(READERS) + "\n")
        cli(tmp_path, env, "subscribers", "import", str(tmp_path / "list.csv"))
        cli(tmp_path, env, "issue", "compose")
        # The provider answers 150 ms after accepting. The outbox has no such pause: there the kill lands
        # wherever it lands, at times between a file and its ledger update.
        emulator.faults(answer_delay_ms=150)

        for target in (50, 130):  # two crashes, at two points of the send
            sender = subprocess.Popen(
                [sys.executable, "-m", "newsletter", "issue", "send"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            kill_when(sender, lambda: progress(provider, emulator, tmp_path), target)
            left = statuses(tmp_path)
            assert left["sent"] < len(READERS), left
            if provider != "outbox":
                assert left["sending"] > 0, f"the kill should leave rows in flight: {left}"

        emulator.faults()
        finished = cli(tmp_path, env, "issue", "send")
        assert "confirmed with the provider after an interruption" in finished.stdout or provider == "outbox"

        assert statuses(tmp_path) == Counter({"sent": len(READERS)})
        got = delivered(provider, emulator, tmp_path)
        assert set(got) == set(READERS)
        assert set(got.values()) == {1}, [a for a, n in got.items() if n > 1]
        again = cli(tmp_path, env, "issue", "send")
        assert "nothing to send" in again.stdout
        assert delivered(provider, emulator, tmp_path) == got
