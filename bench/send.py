"""A whole send to 100,000 readers in SQLite through the provider emulator (Postmark batch API).

    .venv/bin/python bench/send.py [--readers 100000] [--provider postmark] [--fail-rate 0.05] [--drop-rate 0]
    .venv/bin/python bench/send.py --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
        [--readers 1000000] [--workers 1,2,4]

With --database (PostgreSQL) the send is shared by `newsletter worker` processes instead: for each
worker count, a fresh store of --readers active readers, the issue marked for sending (as the
scheduler does), then that many workers until it is sent. Prints messages/s, each worker's peak RSS
and the exactly-once check. Target (issue 7, this 2-core machine): 4 workers >= 1.5x one worker, and
per-worker memory flat in the number of readers. --latency-ms gives the emulator a real provider's
round trip; with 0, one worker, the emulator and PostgreSQL already share the two cores.

Runs the send twice: without faults, then with `--fail-rate` of the send requests answered 429 or 500
(and `--drop-rate` accepted then dropped). Each run prints the total time, messages per second, the
sender's peak RSS and the emulator's, and checks with the emulator's own record that every reader got
exactly one message. Target (issue 4, this 2-core machine): >= 2,000 messages/s, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter import ledger
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


def fresh_database(url: str) -> None:
    """Drop and create the database named in `url` (through the server's `postgres` database)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def prepare_postgres(url: str, readers: int) -> int:
    """A store of `readers` active readers (COPY: seconds, not minutes) and this week's issue,
    marked for sending with its ledger written, as the scheduler does in worker mode."""
    fresh_database(url)
    engine = make_engine(url)
    create_schema(engine)
    now = datetime.now(UTC)
    zone = ZoneInfo("UTC")
    with session_scope(engine) as session:
        load_samples(session, zone, now)
    raw = engine.raw_connection()
    try:
        with (
            raw.cursor() as cursor,
            cursor.copy("COPY subscriber (email, status, source, created_at, updated_at) FROM STDIN") as copy,
        ):
            for n in range(readers):
                copy.write_row((f"reader{n}@example.com", "active", "bench", now, now))
        raw.commit()
    finally:
        raw.close()
    settings = Settings(_env_file=None, database_url=url, timezone="UTC", secret_key="x" * 40)
    with session_scope(engine) as session:
        issue_id = compose(session, Week.containing(now, zone), settings).issue.id
    with session_scope(engine) as session:
        ledger.open_send(session, issue_id)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return issue_id


def run_workers(args, port: int, emulator: subprocess.Popen) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")} | {
        "NEWSLETTER_DATABASE_URL": args.database,
        "NEWSLETTER_SECRET_KEY": "bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "NEWSLETTER_PROVIDER": args.provider,
        "NEWSLETTER_API_BASE_URL": f"http://127.0.0.1:{port}",
        "NEWSLETTER_LOG_LEVEL": "WARNING",
        "POSTMARK_SERVER_TOKEN": TOKEN,
        "RESEND_API_KEY": TOKEN,
        "SENDGRID_API_KEY": TOKEN,
        "MAILGUN_API_KEY": TOKEN,
        "MAILGUN_DOMAIN": "mg.example.com",
    }
    rates = {}
    for count in [int(n) for n in args.workers.split(",")]:
        started = time.perf_counter()
        prepare_postgres(args.database, args.readers)
        prepared = time.perf_counter() - started
        httpx.post(f"http://127.0.0.1:{port}/_emulator/reset")
        httpx.post(f"http://127.0.0.1:{port}/_emulator/faults", json={"latency_ms": args.latency_ms})
        emulator_before = cpu_seconds(emulator.pid)
        started = time.perf_counter()
        workers = [
            subprocess.Popen([sys.executable, "-m", "newsletter", "worker", "--exit-when-idle"], env=env)
            for _ in range(count)
        ]
        peak = {worker.pid: 0.0 for worker in workers}
        cpu = dict.fromkeys(peak, 0.0)
        while any(worker.poll() is None for worker in workers):
            for worker in workers:
                if worker.poll() is None:
                    with contextlib.suppress(OSError, IndexError):
                        peak[worker.pid] = max(peak[worker.pid], rss_mb(worker.pid))
                        cpu[worker.pid] = cpu_seconds(worker.pid)
            time.sleep(0.25)
        took = time.perf_counter() - started
        rates[count] = args.readers / took
        failed = [worker.returncode for worker in workers if worker.returncode]
        print(
            f"[PostgreSQL, {count} worker(s), {args.readers:,} readers, provider latency "
            f"{args.latency_ms:g} ms] sent in {took:.1f} s = "
            f"{rates[count]:,.0f} messages/s (store prepared in {prepared:.0f} s); peak RSS per worker "
            f"{', '.join(f'{mb:.0f}' for mb in peak.values())} MB; CPU per worker "
            f"{', '.join(f'{s:.0f}' for s in cpu.values())} s; emulator CPU "
            f"{cpu_seconds(emulator.pid) - emulator_before:.0f} s"
            + (f"; worker exit codes {failed}" if failed else "")
        )
        print("  " + check(port, args.readers))
    if 1 in rates and len(rates) > 1:
        print(
            "  speed-up over one worker: "
            + ", ".join(f"{n} workers {rate / rates[1]:.2f}x" for n, rate in rates.items() if n != 1)
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
    parser.add_argument("--database", help="A PostgreSQL URL: bench `newsletter worker` processes there.")
    parser.add_argument("--workers", default="1,2,4", help="Worker counts to run, with --database.")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="With --database: the emulator answers each request this much later, as a real provider's "
        "round trip does (0: the bench is bound by this machine's CPU alone).",
    )
    args = parser.parse_args()

    port = free_port()
    emulator = start_emulator(port)
    try:
        if args.database:
            run_workers(args, port, emulator)
            return
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
