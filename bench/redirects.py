"""Tracked-link redirects under a link scanner's burst, against the real app: prints figures.

    .venv/bin/python bench/redirects.py [--readers 10000] [--connections 32] [--people 40]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/bench_redirects]

Builds a store (a SQLite file in a temporary directory, or a fresh PostgreSQL database) with
`--readers` active readers, sends them this week's issue through a provider that keeps nothing (the
real sender, renderer and link table), then starts `newsletter serve` on 127.0.0.1 and fires at it:

* the scanner burst: every tracked link of every reader's message (the hidden link included), a
  reader's links back to back on one connection as a gateway fetches them, HEAD then GET for half
  the readers and GET alone for the rest, over `--connections` keep-alive connections;
* a person-shaped trickle at the same time: `--people` readers (whose delivery is an hour old) each
  click two comparisons a few seconds apart with a browser's agent;
* signups on the JSON endpoint, about 20 a second, whose latency shows whether the hits' writes lock
  the form out.

Then it waits for the app's queue to drain and checks the store: every answered hit is there (none
lost), every scanner hit is a machine's and every person's hit a human's. Prints redirects/s, p50/p99
of the redirects and of the signups, and the load average before and after. The load client is a few
lines of asyncio speaking HTTP/1.1 (httpx would be the bottleneck on this 2-core machine).
Target (issue 12): >= 1,500 redirects/s with p99 < 50 ms on SQLite, nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url

from newsletter.config import Settings
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.delivery import Sender
from newsletter.models import Delivery, LinkHit, Subscriber, SubscriberStatus
from newsletter.providers.base import SendResult
from tests.web_server import Server, serving

KEY = "bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
BROWSER = f"{WINDOWS} Chrome/124.0 Safari/537.36"
SCANNER = f"{WINDOWS} Chrome/97.0 Safari/537.36"  # Safe Links: a plain (old) Chrome


class Discard:
    """A provider that accepts every message and keeps nothing: the send costs only our own work."""

    name, max_batch, default_batch = "discard", 1000, 1000

    async def send_batch(self, messages):
        return [SendResult(m.message_id, True, provider_message_id=m.message_id) for m in messages]

    async def reconcile(self, messages):
        return {}

    async def aclose(self):
        return None


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def fresh_postgres(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def build_store(work: Path, url: str, readers: int, people: int) -> tuple[list[list[str]], list[list[str]]]:
    """The store with its issue sent; returns (every reader's tracked paths, the people's comparison
    paths)."""
    from newsletter.content import store_comparisons
    from newsletter.curation import Week
    from newsletter.editions import compose
    from newsletter.samples import dated_into_week, sample_comparisons

    settings = Settings(_env_file=None, database_url=url, secret_key=KEY, timezone="UTC", outbox_dir=work)
    engine = make_engine(url)
    create_schema(engine)
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(sample_comparisons(), now, settings.zone), settings.zone)
        session.execute(
            Subscriber.__table__.insert(),
            [
                {
                    "email": f"reader{n}@example.com",
                    "status": SubscriberStatus.ACTIVE,
                    "source": "bench",
                    "created_at": now,
                    "updated_at": now,
                    "tracking": True,
                }
                for n in range(readers)
            ],
        )
        issue_id = compose(session, Week.containing(now, settings.zone), settings).issue.id
    sender = Sender(engine, settings, Discard())
    report = asyncio.run(sender.send(issue_id))
    assert report.sent == readers, report
    mailer = sender.variants.mailers[0]
    html = mailer.message(delivery_id=1, subscriber_id=1, email="x@example.com").html
    parts = sorted({m[1] for m in re.finditer(r'href="https://[^/"]+/r/([^"]+)"', html)})
    link_parts = [".".join(part.split(".")[:3]) for part in parts]
    kinds = {spec.code: spec.kind for spec in mailer.links}
    comparisons = [lp for lp in link_parts if kinds[lp.split(".")[1]] == "comparison"]
    with session_scope(engine) as session:
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        session.execute(  # the people read the issue an hour after it arrived
            update(Delivery)
            .where(Delivery.subscriber_id.in_(ids[:people]))
            .values(sent_at=now - timedelta(hours=1))
        )
    engine.dispose()
    every = [[f"/r/{lp}.{mailer.token_for(sid)}" for lp in link_parts] for sid in ids[people:]]
    chosen = [
        [f"/r/{lp}.{mailer.token_for(sid)}" for lp in random.sample(comparisons, 2)] for sid in ids[:people]
    ]
    return every, chosen


async def http(reader, writer, method: str, path: str, *, ua: str, body: bytes = b"") -> tuple[int, float]:
    started = time.perf_counter()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {ua}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    raw = await reader.readuntil(b"\r\n\r\n")
    status = int(raw[9:12])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", raw)
    if match and method != "HEAD" and int(match[1]):
        await reader.readexactly(int(match[1]))
    return status, time.perf_counter() - started


async def burst(
    port: int,
    readers: list[list[str]],
    connections: int,
    latencies: list[float],
    sent: list[int],
    rate: float | None = None,
) -> float:
    """Every reader's links over `connections` connections, as fast as the app answers, or at most
    `rate` requests a second in all."""
    started = time.perf_counter()
    queue = list(enumerate(readers))
    queue.reverse()
    gap = connections / rate if rate else 0.0

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        due = time.perf_counter()
        while queue:
            number, paths = queue.pop()
            for path in paths:
                methods = ("HEAD", "GET") if number % 2 else ("GET",)
                for method in methods:
                    if gap:
                        due += gap
                        await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    status, took = await http(reader, writer, method, path, ua=SCANNER)
                    assert status == 303, (status, path)
                    latencies.append(took)
                    sent[0] += 1
        writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - started


async def trickle(
    port: int, people: list[list[str]], seconds: float, latencies: list[float], sent: list[int]
):
    async def person(paths: list[str]) -> None:
        await asyncio.sleep(random.uniform(0, seconds * 0.6))
        for index, path in enumerate(paths):
            if index:
                await asyncio.sleep(random.uniform(3, 6))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)  # a browser's new tab
            status, took = await http(reader, writer, "GET", path, ua=BROWSER)
            writer.close()
            assert status == 303, status
            latencies.append(took)
            sent[0] += 1

    await asyncio.gather(*(person(paths) for paths in people))


async def signups(port: int, until: asyncio.Event, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while not until.is_set():
        body = json.dumps({"email": f"signup{n}@example.com"}).encode()
        status, took = await http(reader, writer, "POST", "/api/subscribe", ua=BROWSER, body=body)
        assert status == 202, status
        latencies.append(took)
        n += 1
        await asyncio.sleep(0.05)
    writer.close()


async def load(port: int, every, people, connections: int, rate: float | None = None):
    scanner, person, signup = [], [], []
    scanner_sent, person_sent = [0], [0]
    done = asyncio.Event()
    form = asyncio.create_task(signups(port, done, signup))
    elapsed, _ = await asyncio.gather(
        burst(port, every, connections, scanner, scanner_sent, rate),
        trickle(port, people, 20, person, person_sent),
    )
    done.set()
    await form
    return scanner, person, signup, scanner_sent[0], person_sent[0], elapsed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


@contextmanager
def web(work: Path, url: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")} | {
        "NEWSLETTER_DATABASE_URL": url,
        "NEWSLETTER_SECRET_KEY": KEY,
        "NEWSLETTER_TIMEZONE": "UTC",
        "NEWSLETTER_SIGNUP_RATE_PER_CLIENT": "100000/minute",
        "NEWSLETTER_OUTBOX_DIR": str(work / "outbox"),
    }
    server = Server(url="", directory=work, env=env)
    with serving(server, "serve") as running:
        yield running


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument(
        "--rate", type=float, default=None, help="cap the burst at this many requests/s (default: flat out)"
    )
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (its database is recreated)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-redirects-"))
    url = args.database or f"sqlite:///{work / 'subscribers.db'}"
    if args.database:
        fresh_postgres(url)
    began = time.perf_counter()
    every, people = build_store(work, url, args.readers + args.people, args.people)
    print(
        f"store: {make_url(url).get_backend_name()}, {args.readers:,} scanned readers with {len(every[0])} "
        f"tracked links each, {args.people} people; built and sent in {time.perf_counter() - began:.1f} s"
    )
    print(f"load average before: {load_average()}")
    with web(work, url) as server:
        port = int(server.url.rsplit(":", 1)[1])
        started = time.perf_counter()
        scanner, person, signup, scanner_sent, person_sent, elapsed = asyncio.run(
            load(port, every, people, args.connections, args.rate)
        )
        after = load_average()
        answered = scanner_sent + person_sent
        engine = make_engine(url)
        deadline = time.monotonic() + 60
        while True:
            with engine.connect() as connection:
                stored = connection.execute(select(func.count()).select_from(LinkHit)).scalar_one()
            if stored >= answered or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        drained = time.perf_counter() - started
    with engine.connect() as connection:
        people_ids = set(
            connection.execute(select(Subscriber.id).order_by(Subscriber.id).limit(args.people)).scalars()
        )
        rows = connection.execute(select(LinkHit.subscriber_id, LinkHit.machine, LinkHit.reason)).all()
    engine.dispose()
    human_people = sum(1 for sid, machine, _ in rows if sid in people_ids and not machine)
    machine_scans = sum(1 for sid, machine, _ in rows if sid not in people_ids and machine)
    reasons: dict[str, int] = {}
    for sid, _, reason in rows:
        if sid not in people_ids:
            reasons[reason or "human"] = reasons.get(reason or "human", 0) + 1
    print(
        f"scanner burst: {len(scanner):,} requests ({scanner_sent:,} answered) in {elapsed:.1f} s = "
        f"{len(scanner) / elapsed:,.0f} redirects/s over {args.connections} connections; latency p50 "
        f"{statistics.median(scanner) * 1000:.1f} ms, p99 {percentile(scanner, 0.99):.1f} ms, max "
        f"{max(scanner) * 1000:.1f} ms"
    )
    print(f"people: {len(person)} clicks, p99 {percentile(person, 0.99):.1f} ms")
    print(
        f"signups during the burst: {len(signup)}, p50 {statistics.median(signup) * 1000:.1f} ms, "
        f"p99 {percentile(signup, 0.99):.1f} ms, max {max(signup) * 1000:.1f} ms"
    )
    print(f"load average after: {after}")
    lost = "none lost" if len(rows) == answered else f"{answered - len(rows):,} LOST"
    print(
        f"hits stored: {len(rows):,} of {answered:,} answered ({lost}); "
        f"the last stored {drained:.1f} s after the load began"
    )
    theirs = sum(1 for row in rows if row[0] in people_ids)
    why = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    print(f"scanner hits judged machine: {machine_scans:,} of {len(rows) - theirs:,} ({why})")
    print(f"people's hits judged human: {human_people} of {theirs}")
    print(f"(work files in {work})")


if __name__ == "__main__":
    main()
