"""A whole send to 100,000 readers in SQLite through the provider emulator (Postmark batch API).

    .venv/bin/python bench/send.py [--readers 100000] [--provider postmark] [--fail-rate 0.05] [--drop-rate 0]

Runs the send twice: without faults, then with `--fail-rate` of the send requests answered 429 or 500
(and `--drop-rate` accepted then dropped). Each run prints the total time, messages per second, the
sender's peak RSS and the emulator's, and checks with the emulator's own record that every reader got
exactly one message. Target (issue 4, this 2-core machine): >= 2,000 messages/s, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.providers import make_provider
from newsletter.samples import load_samples
from tests.web_server import free_port

TOKEN = "emulator-token"  # noqa: S105


def rss_mb(pid: int | None = None) -> float:
    """Peak resident memory: this process (getrusage) or another one (/proc VmHWM)."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time used so far by this process or another one."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_emulator(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "emulator", "--port", str(port), "--seed", "7"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the emulator did not start")


def prepare(directory: Path, provider: str, port: int, readers: int) -> tuple[Settings, int]:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{directory / 'subscribers.db'}",
        outbox_dir=directory / "outbox",
        secret_key="bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        provider=provider,
        api_base_url=f"http://127.0.0.1:{port}",
        postmark_server_token=TOKEN,
        resend_api_key=TOKEN,
        sendgrid_api_key=TOKEN,
        mailgun_api_key=TOKEN,
        mailgun_domain="mg.example.com",
        timezone="UTC",
    )
    engine = make_engine(settings.database_url)
    create_schema(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        load_samples(session, settings.zone, now)
        for start in range(0, readers, 20_000):
            session.execute(
                Subscriber.__table__.insert(),
                [
                    {
                        "email": f"reader{n}@example.com",
                        "status": SubscriberStatus.ACTIVE,
                        "source": "bench",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(start, min(readers, start + 20_000))
                ],
            )
        issue_id = compose(session, Week.containing(now, settings.zone), settings).issue.id
    engine.dispose()
    return settings, issue_id


async def send(settings: Settings, issue_id: int):
    engine = make_engine(settings.database_url)
    provider = make_provider(settings)
    try:
        return await Sender(engine, settings, provider).send(issue_id)
    finally:
        await provider.aclose()


def check(port: int, readers: int) -> str:
    counts = httpx.get(f"http://127.0.0.1:{port}/_emulator/counts", timeout=60).json()
    per = counts["per_address"]
    exactly_once = len(per) == readers and all(v == 1 for v in per.values())
    requests = ", ".join(f"{k} {v}" for k, v in sorted(counts["requests"].items()))
    return (
        f"emulator: {counts['total']:,} messages to {len(per):,} readers; every reader exactly once: "
        f"{'yes' if exactly_once else 'NO'}; requests: {requests}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument(
        "--provider", default="postmark", choices=["postmark", "resend", "sendgrid", "mailgun"]
    )
    parser.add_argument("--fail-rate", type=float, default=0.05)
    parser.add_argument("--drop-rate", type=float, default=0.0)
    args = parser.parse_args()

    port = free_port()
    emulator = start_emulator(port)
    try:
        runs = [
            ("no faults", {}),
            (
                f"{args.fail_rate:.0%} of requests 429/500"
                + (f", {args.drop_rate:.0%} dropped" if args.drop_rate else ""),
                {"fail_rate": args.fail_rate, "drop_rate": args.drop_rate},
            ),
        ]
        for label, faults in runs:
            with tempfile.TemporaryDirectory(prefix="bench-send-") as work:
                settings, issue_id = prepare(Path(work), args.provider, port, args.readers)
                httpx.post(f"http://127.0.0.1:{port}/_emulator/reset")
                httpx.post(
                    f"http://127.0.0.1:{port}/_emulator/faults",
                    json={"fail_rate": 0.0, "drop_rate": 0.0} | faults,
                )
                started = time.perf_counter()
                cpu_before, emulator_before = cpu_seconds(), cpu_seconds(emulator.pid)
                report = asyncio.run(send(settings, issue_id))
                took = time.perf_counter() - started
                sender_cpu, emulator_cpu = (
                    cpu_seconds() - cpu_before,
                    cpu_seconds(emulator.pid) - emulator_before,
                )
                print(
                    f"[{args.provider}, {label}] {report.sent:,} sent in {took:.2f} s = "
                    f"{report.sent / took:,.0f} "
                    f"messages/s end to end (batches retried {report.retries}, confirmed by reconciliation "
                    f"{report.reconciled}, failed {report.failed_total}); peak RSS sender {rss_mb():.0f} MB, "
                    f"emulator {rss_mb(emulator.pid):.0f} MB; CPU sender {sender_cpu:.1f} s, "
                    f"emulator {emulator_cpu:.1f} s"
                )
                print("  " + check(port, args.readers))
    finally:
        os.kill(emulator.pid, signal.SIGTERM)
        emulator.wait()


if __name__ == "__main__":
    main()
