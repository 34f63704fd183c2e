"""Outgoing webhooks: what the outbox costs the change that writes it, and how fast the outbox drains.

    .venv/bin/python bench/webhooks.py [--rows 20000] [--database URL]

1. A CSV import of --rows readers (in process, one transaction), without an endpoint and with one: the
   outbox rows are written in the import's own transaction, so the difference is their whole cost.
2. `deliver_due` draining those --rows events to a real receiver on 127.0.0.1 (a threaded http.server
   that verifies every request with `standardwebhooks`, on the same two cores): deliveries per second,
   every event delivered once, in the store and at the receiver.
Each figure comes with the load average at its start: other work on the machine moves them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session, func, select

from newsletter.config import Settings
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.models import WebhookMessage
from newsletter.outgoing_webhooks import endpoints
from newsletter.outgoing_webhooks.sender import deliver_due
from newsletter.subscriber_files import import_csv
from tests.webhook_receiver import Receiver

KEY = "bench-signing-key-0123456789-abcdefghijklmnop"


def store(directory: Path, database: str | None) -> tuple[Settings, object]:
    url = database or f"sqlite:///{directory / 'subscribers.db'}"
    settings = Settings(_env_file=None, database_url=url, secret_key=KEY, outbox_dir=directory / "outbox")
    engine = make_engine(url)
    create_schema(engine)
    return settings, engine


def timed_import(engine, path: Path) -> float:
    started = time.perf_counter()
    with session_scope(engine) as session:
        import_csv(session, path, key=KEY.encode(), confirm=False, skip_invalid=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--database", help="a fresh PostgreSQL database URL instead of SQLite files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        base = Path(temp)
        csv = base / "readers.csv"
        csv.write_text("email\n" + "".join(f"reader{n}@example.com\n" for n in range(args.rows)))
        (base / "plain").mkdir()
        (base / "hooked").mkdir()

        _, plain = store(base / "plain", None)
        load = os.getloadavg()[0]
        bare = timed_import(plain, csv)
        print(f"import of {args.rows:,} readers, no endpoint:  {bare:6.2f} s   (load {load:.1f})")

        settings, engine = store(base / "hooked", args.database)
        receiver = Receiver().start()
        with session_scope(engine) as session:
            _, receiver.secret = endpoints.add(session, receiver.url, "all", key=KEY.encode())
        load = os.getloadavg()[0]
        hooked = timed_import(engine, csv)
        with Session(engine) as session:
            queued = session.exec(select(func.count()).select_from(WebhookMessage)).one()
        print(
            f"import of {args.rows:,} readers, one endpoint: {hooked:6.2f} s   (load {load:.1f}); "
            f"{queued:,} events queued; +{(hooked - bare) / bare:.0%} for the outbox"
        )

        load = os.getloadavg()[0]
        started = time.perf_counter()
        delivered = 0
        while True:
            report = deliver_due(engine, settings, limit=10_000)
            delivered += report.delivered
            if not report.attempted:
                break
        seconds = time.perf_counter() - started
        with Session(engine) as session:
            done = session.exec(select(func.count()).where(WebhookMessage.status == "delivered")).one()
        ids = {item.msg_id for item in receiver.received}
        print(
            f"delivery of {delivered:,} events to a local verifying receiver: {seconds:6.2f} s = "
            f"{delivered / seconds:,.0f}/s   (load {load:.1f})"
        )
        print(
            f"delivered in the store {done:,} of {queued:,}; received {len(receiver.received):,}, "
            f"distinct ids {len(ids):,}, rejected {len(receiver.rejected)}"
        )
        receiver.stop()


if __name__ == "__main__":
    main()
