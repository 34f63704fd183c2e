"""The sunset job on a big list: prints figures.

    .venv/bin/python bench/sunset.py [--readers 100000] [--issues 4]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/bench_sunset]

Builds a store (a SQLite file in a temporary directory, or a fresh PostgreSQL database) where
`--readers` active readers were each sent the last `--issues` issues (the ledger's rows, the issues'
link tables): 60% of them clicked (a human hit on one issue), 5% only had a machine's hits, 5% voted,
so about a third are silent. Then it times, with a provider that keeps nothing (so only our own work
counts): the query that finds the silent readers; the job's first run (asking each once, with its
event, and building and handing over every question); a second run the same day (nothing to ask);
and a run 15 days later that lets every unanswered reader go (an unsubscribe and an event each).
Checks that every silent reader was asked exactly once and let go. Prints the load average too.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select

from bench.redirects import Discard, fresh_postgres, load_average
from newsletter import signs_of_life, sunset
from newsletter.config import Settings
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.models import (
    Comparison,
    Delivery,
    Issue,
    IssueLink,
    LinkHit,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    SunsetAsk,
    Tool,
    Vote,
)

KEY = "bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ROWS = 5000  # rows per executemany


def build(url: str, readers: int, issues: int, now: datetime) -> int:
    """The store; returns how many readers are silent."""
    engine = make_engine(url)
    create_schema(engine)
    random.seed(7)
    first = now - timedelta(weeks=issues, days=-1)
    with session_scope(engine) as session:
        session.execute(
            insert(Subscriber),
            [
                {
                    "email": f"reader{n}@example.com",
                    "status": SubscriberStatus.ACTIVE,
                    "source": "bench",
                    "created_at": first - timedelta(days=30),
                    "updated_at": first - timedelta(days=30),
                    "tracking": True,
                }
                for n in range(readers)
            ],
        )
        tool = Tool(slug="t", name="T", category="C", tagline="t", description="d", entry_price="Free")
        session.add(tool)
        session.flush()
        comparison = Comparison(
            slug="c",
            title="T vs T",
            dek="d",
            category="C",
            left_tool_id=tool.id,
            right_tool_id=tool.id,
            published_at=first,
        )
        session.add(comparison)
        issue_ids, link_ids, machine_links = [], [], []
        for week in range(issues):
            sent = first + timedelta(weeks=week)
            issue = Issue(week=f"2026-W{10 + week:02d}", status="sent", send_started_at=sent, sent_at=sent)
            session.add(issue)
            session.flush()
            link = IssueLink(issue_id=issue.id, code=f"c{week}", kind="comparison", url="https://x.example")
            decoy = IssueLink(issue_id=issue.id, code=f"d{week}", kind="decoy", url="https://x.example/d")
            session.add_all([link, decoy])
            session.flush()
            issue_ids.append(issue.id)
            link_ids.append(link.id)
            machine_links.append(decoy.id)
        ids = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
        for number, issue_id in enumerate(issue_ids):
            sent = first + timedelta(weeks=number)
            rows = [
                {
                    "issue_id": issue_id,
                    "subscriber_id": sid,
                    "status": "sent",
                    "attempts": 1,
                    "created_at": sent,
                    "updated_at": sent,
                    "sent_at": sent,
                }
                for sid in ids
            ]
            for start in range(0, len(rows), ROWS):
                session.execute(insert(Delivery), rows[start : start + ROWS])
        hits, votes, silent = [], [], 0
        for sid in ids:
            roll = random.random()
            week = random.randrange(issues)
            at = first + timedelta(weeks=week, hours=3)
            hit = {
                "issue_id": issue_ids[week],
                "subscriber_id": sid,
                "at": at,
                "method": "GET",
                "agent": "browser",
                "prefetch": False,
            }
            if roll < 0.60:
                hits.append(hit | {"link_id": link_ids[week], "machine": False, "reason": ""})
            elif roll < 0.65:
                hits.append(hit | {"link_id": machine_links[week], "machine": True, "reason": "decoy"})
                silent += 1
            elif roll < 0.70:
                votes.append(
                    {
                        "comparison_id": comparison.id,
                        "tool_id": tool.id,
                        "voter": f"s{sid}",
                        "subscriber_id": sid,
                        "verdict": "ship",
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            else:
                silent += 1
        for start in range(0, len(hits), ROWS):
            session.execute(insert(LinkHit), hits[start : start + ROWS])
        if votes:
            session.execute(insert(Vote), votes)
    engine.dispose()
    return silent


def timed(label: str, work) -> object:
    started = time.perf_counter()
    result = work()
    print(f"{label:<58} {time.perf_counter() - started:8.2f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--issues", type=int, default=4)
    parser.add_argument("--database", help="A PostgreSQL URL (the database is made afresh).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        url = args.database or f"sqlite:///{Path(work) / 'bench.db'}"
        if args.database:
            fresh_postgres(url)
        settings = Settings(
            _env_file=None, database_url=url, secret_key=KEY, timezone="UTC", sunset_issues=args.issues
        )
        now = datetime.now(UTC)
        print(f"load average at start: {load_average()}")
        silent = timed(
            f"build: {args.readers:,} readers x {args.issues} issues",
            lambda: build(url, args.readers, args.issues, now),
        )
        engine = make_engine(url)
        with session_scope(engine) as session:
            span = signs_of_life.last_span(session, args.issues)
            found = timed(
                "find the silent readers (one query)",
                lambda: list(session.scalars(signs_of_life.silent_readers(span, now))),
            )
        assert len(found) == silent, (len(found), silent)
        first = timed(
            f"first run: ask {silent:,} and hand over every question",
            lambda: sunset.run(engine, settings, lambda _s: Discard(), now),
        )
        assert first.asked == first.sent == silent, first.summary()
        again = timed(
            "second run the same day: nothing to ask",
            lambda: sunset.run(engine, settings, lambda _s: Discard(), now + timedelta(hours=1)),
        )
        assert again.asked == 0, again.summary()
        later = timed(
            f"15 days later: let {silent:,} go (unsubscribe + event each)",
            lambda: sunset.run(engine, settings, lambda _s: Discard(), now + timedelta(days=15)),
        )
        assert later.settled[sunset.Outcome.SUNSET] == silent, later.summary()
        with session_scope(engine) as session:
            asks = session.scalar(select(func.count()).select_from(SunsetAsk))
            left = session.scalar(
                select(func.count()).where(
                    SubscriberEvent.kind == "unsubscribed", SubscriberEvent.source == "sunset"
                )
            )
        assert asks == left == silent, (asks, left, silent)
        print(f"asked once and let go: {silent:,} of {args.readers:,} readers (checked against the store)")
        print(f"load average at end: {load_average()}")
        engine.dispose()


if __name__ == "__main__":
    main()
