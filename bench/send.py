"""A whole send, measured against the floor of a send in the same run.

    .venv/bin/python bench/send.py [--readers 100000] [--batch 100] [--sink fast|emulator] [--repeat 3]
    .venv/bin/python bench/send.py --database postgresql+psycopg://postgres@127.0.0.1:5432/bench_send \
        [--workers 1] [--readers 1000000]

The sender is the real command in its own process, start-up included: `newsletter issue send` on a
SQLite store of --readers active readers, or with --database (PostgreSQL) that many
`newsletter worker --exit-when-idle` processes per --workers count, the issue marked for sending as
the scheduler does. Its CPU (user + system) and peak RSS are the operating system's accounting of
that process alone (wait4), never the sink's or this script's.

--sink fast (default): `bench/fast_sink.py`, a Postmark-compatible sink in its own process that
parses each batch with orjson and answers, costing the sender nothing. In the same run, against the
same sink, the floor: `bench/send_floor.py`, a bare Python loop with no store (the issue's HTML and
text JSON-escaped once, joined per reader with a token, one httpx pool, --concurrency requests in
flight). Prints the sender's CPU per message, the floor's, their ratio, wall time, messages/s and
peak RSS; with --repeat N the floor and the sender alternate N times and the medians are printed.
--naive adds the loop most people write (`json.dumps` per batch) for scale.

--sink emulator: the project's emulator (`newsletter emulator`), which checks every message as the
providers do (~0.34 ms of CPU per message: it hides the sender, so no ratio), once without faults
and once with --fail-rate of the requests answered 429 or 500 (and --drop-rate accepted then
dropped); any --provider.

Every run checks the sink's or the emulator's record: every reader exactly once. The load average
is printed with each figure: on a shared machine compare within one run, not across runs.
Targets (issue 16, this 2-core machine, 100,000 readers, SQLite, batches of 100, fast sink): CPU
per message at most 1.3x the floor's; >= 5,000 messages/s; sender peak RSS < 100 MB, flat in the
number of readers (< 150 MB with --batch 500); within 1.5x of the floor on PostgreSQL, one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter import ledger
from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.db import create_schema, is_sqlite, make_engine, session_scope
from newsletter.editions import compose, issue_view
from newsletter.models import Issue, Subscriber, SubscriberStatus
from newsletter.personalise import IssueMailer
from newsletter.render import Renderer
from newsletter.samples import load_samples
from tests.web_server import free_port

TOKEN = "emulator-token"  # noqa: S105
KEY = "bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"
BENCH = Path(__file__).resolve().parent


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


@dataclass
class Run:
    """One process (or several workers) measured from outside."""

    seconds: float
    cpu: float  # user + system of the measured process(es), summed
    peak_mb: float  # the largest single process's peak RSS
    output: str
    exit_codes: list[int]

    def per_message_us(self, messages: int) -> float:
        return self.cpu / messages * 1e6


def measure(commands: list[list[str]], env: dict[str, str], cwd: Path) -> Run:
    """Start the commands at once and wait for all: wall time to the last exit, CPU of those
    processes alone from the kernel's accounting of each finished child (wait4), and the largest
    one's peak RSS (`high_water_mb`)."""
    outputs = [tempfile.TemporaryFile() for _ in commands]  # noqa: SIM115  (closed below)
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        for command, out in zip(commands, outputs, strict=True)
    ]
    cpu, codes = 0.0, {}
    peaks = dict.fromkeys((process.pid for process in processes), 0.0)
    try:
        while len(codes) < len(processes):
            for process in processes:
                if process.pid in codes:
                    continue
                peaks[process.pid] = max(peaks[process.pid], high_water_mb(process.pid))
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    process.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
                    codes[pid] = process.returncode
                    cpu += usage.ru_utime + usage.ru_stime
            time.sleep(0.02)
    finally:
        for process in processes:
            if process.returncode is None:  # interrupted: leave nothing running
                process.kill()
                process.wait()
    seconds = time.perf_counter() - started
    peak = max(peaks.values())
    texts = []
    for out in outputs:
        out.seek(0)
        texts.append(out.read().decode(errors="replace"))
        out.close()
    return Run(seconds, cpu, peak, "".join(texts), list(codes.values()))


def high_water_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM of its own address space), 0 once it is gone.

    Not wait4's ru_maxrss: Linux carries a parent's resident size across fork and exec into the
    child's, so a child of this script (which holds the store it built) would show this script's
    peak. VmHWM belongs to the address space the program got at exec; it only grows, so sampling
    it every 20 ms until the process ends misses nothing but a peak in its last 20 ms."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def wait_for(url: str, process: subprocess.Popen, what: str) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


class FastSink:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "fast_sink.py"), "--port", str(self.port), "--token", TOKEN]
        )
        wait_for(f"{self.url}/_sink/health", self.process, "the fast sink")

    def reset(self, faults: dict | None = None) -> None:
        httpx.post(f"{self.url}/_sink/reset")

    def check(self, readers: int) -> tuple[bool, str]:
        counts = httpx.get(f"{self.url}/_sink/counts", timeout=60).json()
        ok = counts["readers"] == readers and counts["total"] == readers and counts["repeated"] == 0
        return ok, (
            f"sink: {counts['total']:,} messages to {counts['readers']:,} readers in {counts['requests']:,} "
            f"requests; every reader exactly once: {'yes' if ok else 'NO'}; the sink's own CPU "
            f"{counts['cpu'] * 1e6 / max(counts['total'], 1):.0f} us/message"
        )

    def stop(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)
        self.process.wait()


class Emulator(FastSink):
    def __init__(self) -> None:  # the same shape, the project's emulator behind it
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "emulator", "--port", str(self.port), "--seed", "7"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(f"{self.url}/_emulator/health", self.process, "the emulator")

    def reset(self, faults: dict | None = None) -> None:
        httpx.post(f"{self.url}/_emulator/reset")
        httpx.post(f"{self.url}/_emulator/faults", json={"fail_rate": 0.0, "drop_rate": 0.0} | (faults or {}))

    def check(self, readers: int) -> tuple[bool, str]:
        counts = httpx.get(f"{self.url}/_emulator/counts", timeout=60).json()
        per = counts["per_address"]
        ok = len(per) == readers and all(v == 1 for v in per.values())
        requests = ", ".join(f"{k} {v}" for k, v in sorted(counts["requests"].items()))
        return ok, (
            f"emulator: {counts['total']:,} messages to {len(per):,} readers; every reader exactly once: "
            f"{'yes' if ok else 'NO'}; requests: {requests}"
        )


# --- the store ----------------------------------------------------------------------------------------


def sqlite_template(directory: Path, readers: int) -> Path:
    """A SQLite store of `readers` active readers and this week's draft; each run sends a copy."""
    path = directory / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    now = datetime.now(UTC)
    zone = ZoneInfo("UTC")
    settings = Settings(_env_file=None, database_url=f"sqlite:///{path}", timezone="UTC", secret_key=KEY)
    with session_scope(engine) as session:
        load_samples(session, zone, now)
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
        compose(session, Week.containing(now, zone), settings)
    engine.dispose()
    return path


def fresh_database(url: str) -> None:
    """Drop and create the database named in `url` (through the server's `postgres` database)."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def prepare_postgres(url: str, readers: int) -> None:
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
    settings = Settings(_env_file=None, database_url=url, timezone="UTC", secret_key=KEY)
    with session_scope(engine) as session:
        issue_id = compose(session, Week.containing(now, zone), settings).issue.id
    with session_scope(engine) as session:
        ledger.open_send(session, issue_id)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    engine.dispose()


def issue_for_floor(url: str, path: Path) -> None:
    """The issue's bodies as a reader gets them (tracked links), a marker where the reader's token
    and address go, and the header fields: what the floor joins per reader."""
    settings = Settings(_env_file=None, database_url=url, timezone="UTC", secret_key=KEY)
    engine = make_engine(url)
    with session_scope(engine) as session:
        issue = session.exec(select(Issue).order_by(Issue.id.desc())).first()
        view = issue_view(session, issue, settings)
        tag = issue.slug
    engine.dispose()
    mailer = IssueMailer(Renderer().render_issue(view), settings, tag=tag, expires_at=2**31)
    rendered = mailer.tracked or mailer.rendered
    markers = {"token": "\x00token\x00", "email": "\x00email\x00"}
    path.write_text(
        json.dumps(
            {
                "html": rendered.html.fill(markers),
                "text": rendered.text.fill(markers),
                "from": settings.from_address,
                "subject": rendered.subject,
                "tag": tag,
                "site": settings.site_url,
                "list_id": mailer.list_id,
            }
        )
    )


# --- one run ------------------------------------------------------------------------------------------


def sender_env(args, url: str, sink_url: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")} | {
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": KEY,
        "NEWSLETTER_TIMEZONE": "UTC",
        "NEWSLETTER_PROVIDER": args.provider,
        "NEWSLETTER_API_BASE_URL": sink_url,
        "NEWSLETTER_SEND_BATCH_SIZE": str(args.batch),
        "NEWSLETTER_SEND_CONCURRENCY": str(args.concurrency),
        "NEWSLETTER_LOG_LEVEL": "WARNING",
        "POSTMARK_SERVER_TOKEN": TOKEN,
        "RESEND_API_KEY": TOKEN,
        "SENDGRID_API_KEY": TOKEN,
        "MAILGUN_API_KEY": TOKEN,
        "MAILGUN_DOMAIN": "mg.example.com",
    }


def run_sender(args, work: Path, template: Path | None, sink_url: str, workers: int) -> Run:
    """The real sender, from a fresh store: `issue send` on a copy of the SQLite template, or
    `workers` worker processes on a freshly prepared PostgreSQL store."""
    if template is not None:
        store = work / "subscribers.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(template, store)
        env = sender_env(args, f"sqlite:///{store}", sink_url)
        return measure([[sys.executable, "-m", "newsletter", "issue", "send"]], env, work)
    prepare_postgres(args.database, args.readers)
    env = sender_env(args, args.database, sink_url)
    command = [sys.executable, "-m", "newsletter", "worker", "--exit-when-idle"]
    return measure([command] * workers, env, work)


def run_floor(args, work: Path, sink_url: str, mode: str) -> Run:
    command = [
        sys.executable,
        str(BENCH / "send_floor.py"),
        "--url",
        sink_url,
        "--issue",
        str(work / "issue.json"),
    ]
    command += ["--readers", str(args.readers), "--batch", str(args.batch), "--mode", mode]
    command += ["--concurrency", str(args.concurrency), "--token", TOKEN]
    return measure([command], dict(os.environ), work)


def summary_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Issue ") or "error" in line.lower()]
    return lines[-1].strip() if lines else output.strip().splitlines()[-1:][0] if output.strip() else ""


def describe(name: str, run: Run, readers: int, check: str) -> str:
    failed = [code for code in run.exit_codes if code]
    return (
        f"  {name:<22} {run.per_message_us(readers):6.0f} us CPU/message  {run.seconds:6.1f} s wall  "
        f"{readers / run.seconds:6,.0f} messages/s  peak RSS {run.peak_mb:4.0f} MB  ({load()})"
        + (f"  EXIT {failed}" if failed else "")
        + f"\n  {'':<22} {check}"
    )


def fast_sink_runs(args, work: Path, template: Path | None, workers: int) -> None:
    sink = FastSink()
    floors, naives, senders = [], [], []
    try:
        for round_ in range(1, args.repeat + 1):
            print(f"round {round_} of {args.repeat}")
            sink.reset()
            floor = run_floor(args, work, sink.url, "pre-encoded")
            floors.append(floor)
            print(describe("floor (bare loop)", floor, args.readers, sink.check(args.readers)[1]))
            if args.naive:
                sink.reset()
                naive = run_floor(args, work, sink.url, "dumps")
                naives.append(naive)
                print(describe("json.dumps per batch", naive, args.readers, sink.check(args.readers)[1]))
            sink.reset()
            sender = run_sender(args, work, template, sink.url, workers)
            senders.append(sender)
            label = "issue send" if template is not None else f"{workers} worker(s)"
            print(describe(label, sender, args.readers, sink.check(args.readers)[1]))
            if template is not None:
                print(f"  {'':<22} {summary_line(sender.output)}")
            elif any(sender.exit_codes):
                print(sender.output[-2000:])
    finally:
        sink.stop()

    def median(runs: list[Run], attribute: str) -> float:
        return statistics.median(getattr(run, attribute) for run in runs)

    n = args.readers
    floor_us = statistics.median(run.per_message_us(n) for run in floors)
    sender_us = statistics.median(run.per_message_us(n) for run in senders)
    ratios = [s.cpu / f.cpu for s, f in zip(senders, floors, strict=True)]
    print(
        f"\nmedians of {args.repeat} round(s), {n:,} readers, batches of {args.batch}, "
        f"{args.concurrency} in flight ({load()}):\n"
        f"  floor:  {floor_us:.0f} us CPU/message, {median(floors, 'seconds'):.1f} s wall, "
        f"{n / median(floors, 'seconds'):,.0f} messages/s, peak RSS {median(floors, 'peak_mb'):.0f} MB\n"
        + (
            f"  json.dumps per batch: {statistics.median(r.per_message_us(n) for r in naives):.0f} us "
            f"CPU/message, {median(naives, 'seconds'):.1f} s wall\n"
            if naives
            else ""
        )
        + f"  sender: {sender_us:.0f} us CPU/message, {median(senders, 'seconds'):.1f} s wall, "
        f"{n / median(senders, 'seconds'):,.0f} messages/s, peak RSS {median(senders, 'peak_mb'):.0f} MB\n"
        f"  sender / floor CPU per message: {statistics.median(ratios):.2f}x "
        f"(each round: {', '.join(f'{r:.2f}x' for r in ratios)})"
    )


def emulator_runs(args, work: Path, template: Path | None, workers: int) -> None:
    emulator = Emulator()
    runs = [("no faults", {})]
    if template is not None and (args.fail_rate or args.drop_rate):
        label = f"{args.fail_rate:.0%} of requests 429/500" + (
            f", {args.drop_rate:.0%} dropped" if args.drop_rate else ""
        )
        runs.append((label, {"fail_rate": args.fail_rate, "drop_rate": args.drop_rate}))
    try:
        for label, faults in runs:
            emulator.reset(faults | ({"latency_ms": args.latency_ms} if args.latency_ms else {}))
            sender = run_sender(args, work, template, emulator.url, workers)
            _, check = emulator.check(args.readers)
            print(f"[{args.provider}, emulator, {label}]")
            print(
                describe(
                    "issue send" if template is not None else f"{workers} worker(s)",
                    sender,
                    args.readers,
                    check,
                )
            )
            if template is not None:
                print(f"  {'':<22} {summary_line(sender.output)}")
    finally:
        emulator.stop()


def interrupted(signum, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally`s: sinks and senders are stopped


def main() -> None:
    signal.signal(signal.SIGTERM, interrupted)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument(
        "--batch", type=int, default=100, help="NEWSLETTER_SEND_BATCH_SIZE (Postmark: <= 500)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (both senders)")
    parser.add_argument("--sink", choices=["fast", "emulator"], default="fast")
    parser.add_argument(
        "--provider", default="postmark", choices=["postmark", "resend", "sendgrid", "mailgun"]
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds of floor then sender (fast sink)")
    parser.add_argument("--naive", action="store_true", help="also the json.dumps-per-batch loop")
    parser.add_argument("--database", help="a PostgreSQL URL: `newsletter worker` processes send there")
    parser.add_argument("--workers", default="1", help="worker counts to run with --database, e.g. 1,2,4")
    parser.add_argument("--fail-rate", type=float, default=0.05, help="emulator: requests answered 429/500")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="emulator: accepted, then dropped")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="emulator: a provider's round trip")
    args = parser.parse_args()
    if args.sink == "fast" and args.provider != "postmark":
        parser.error("the fast sink speaks Postmark's batch API only; use --sink emulator for the others")
    if args.database and is_sqlite(args.database):
        parser.error("--database is for PostgreSQL; SQLite is the default (a fresh file per run)")

    database = "PostgreSQL" if args.database else "SQLite"
    print(
        f"bench/send.py: {args.readers:,} readers, {database}, {args.provider}, batches of {args.batch}, "
        f"{args.concurrency} requests in flight, {args.sink} sink; {os.cpu_count()} cores, {load()}; "
        f"Python {sys.version.split()[0]}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-send-") as directory:
        work = Path(directory)
        started = time.perf_counter()
        if args.database:
            template = None
            prepare_postgres(args.database, 0)
            issue_for_floor(args.database, work / "issue.json")
        else:
            template = sqlite_template(work, args.readers)
            issue_for_floor(f"sqlite:///{template}", work / "issue.json")
        print(f"store prepared in {time.perf_counter() - started:.1f} s")
        for workers in [int(n) for n in args.workers.split(",")] if args.database else [1]:
            if args.sink == "fast":
                fast_sink_runs(args, work, template, workers)
            else:
                emulator_runs(args, work, template, workers)


if __name__ == "__main__":
    main()
