"""Rendering and personalisation figures: prints them, asserts nothing.

    .venv/bin/python bench/render.py [--readers 10000] [--runs 50]

1. Render an issue of three sample comparisons (Jinja, MJML, premailer and the text part together):
   the first (cold) render and the median, with each stage's median.
2. Personalise 10,000 messages (token, links, address; no disk), in the sender's batches: messages/s.
3. Personalise them again and write each to the outbox as an .eml file: messages per second.
4. The whole send through the ledger on a SQLite file (10,000 readers): messages per second.
Peak RSS of the process is printed at the end. Targets (issue 2, this 2-core machine): render < 20 ms,
personalisation >= 30,000 messages/s, peak RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bench_store

from newsletter.content import comparison_views, store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.delivery import Sender
from newsletter.editions import compose, issue_comparisons, issue_view
from newsletter.mjml_html import compile_mjml
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.personalise import IssueMailer
from newsletter.providers import OutboxProvider
from newsletter.render import Renderer
from newsletter.samples import dated_into_week, sample_comparisons


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    work, settings, engine = bench_store("bench-render-")
    now = datetime.now(UTC)
    week = Week.containing(now, settings.zone)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(sample_comparisons(), now, settings.zone), settings.zone)
        issue = compose(session, week, settings).issue
        view = issue_view(session, issue, settings)
        picks = comparison_views(session, issue_comparisons(session, issue), settings.site_url)
    print(f"issue {view.week}: {len(view.comparisons)} comparisons ({', '.join(c.slug for c in picks)})")

    renderer = Renderer()
    started = time.perf_counter()
    rendered = renderer.render_issue(view)
    cold = time.perf_counter() - started
    totals, jinja, mjml_premailer, text = [], [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        renderer.render_issue(view)
        totals.append(time.perf_counter() - t0)
    context = renderer.issue_context(view, "0" * 12)
    for _ in range(args.runs):
        t0 = time.perf_counter()
        source = renderer.env.get_template("email/issue.mjml.j2").render(context)
        t1 = time.perf_counter()
        compile_mjml(source)
        t2 = time.perf_counter()
        renderer.env.get_template("email/issue.txt.j2").render(context)
        t3 = time.perf_counter()
        jinja.append(t1 - t0)
        mjml_premailer.append(t2 - t1)
        text.append(t3 - t2)
    print(
        f"render issue: first {ms(cold)}, median {ms(statistics.median(totals))} over {args.runs} runs "
        f"(p90 {ms(statistics.quantiles(totals, n=10)[-1])})"
    )
    print(
        f"  stages (median): Jinja MJML {ms(statistics.median(jinja))}, MJML + premailer "
        f"{ms(statistics.median(mjml_premailer))}, text part {ms(statistics.median(text))}"
    )
    print(
        f"  HTML {rendered.html.size:,} bytes (Gmail clips above 102,000), text {rendered.text.size:,} bytes"
    )

    # Personalise and write in batches, as the sender does: one batch of messages is alive at a time.
    expires = int(now.timestamp()) + 86400 * settings.link_token_days
    mailer = IssueMailer(rendered, settings, tag=view.slug, expires_at=expires)
    readers = [(n, n, f"reader{n}@example.com") for n in range(1, args.readers + 1)]
    batch = 500  # what the sender hands the outbox per batch
    t0 = time.perf_counter()
    size = 0
    for start in range(0, len(readers), batch):
        messages = [
            mailer.message(delivery_id=d, subscriber_id=s, email=e)
            for d, s, e in readers[start : start + batch]
        ]
        for message in messages:  # what a provider does: read each body once while serialising it
            size += len(message.html) + len(message.text)
    personalise = time.perf_counter() - t0
    assert size > 90_000 * len(readers), "every body was built in full"
    print(
        f"personalise {len(readers):,} messages, both bodies built in full (batches of {batch}, no disk): "
        f"{personalise:.3f} s "
        f"= {len(readers) / personalise:,.0f} messages/s"
    )

    provider = OutboxProvider(work / "outbox-direct")
    t0 = time.perf_counter()
    for start in range(0, len(readers), batch):
        messages = [
            mailer.message(delivery_id=d, subscriber_id=s, email=e)
            for d, s, e in readers[start : start + batch]
        ]
        asyncio.run(provider.send_batch(messages))
    write = time.perf_counter() - t0
    print(
        f"personalise and write {len(readers):,} outbox .eml files: {write:.3f} s "
        f"= {len(readers) / write:,.0f} messages/s"
    )
    del messages

    with session_scope(engine) as session:
        session.execute(
            Subscriber.__table__.insert(),
            [
                {
                    "email": e,
                    "status": SubscriberStatus.ACTIVE,
                    "source": "bench",
                    "created_at": now,
                    "updated_at": now,
                }
                for _, _, e in readers
            ],
        )
    report = asyncio.run(
        Sender(engine, settings, OutboxProvider(settings.outbox_dir), renderer).send(issue.id)
    )
    print(
        f"send through the ledger (SQLite, outbox): {report.sent:,} messages in {report.seconds:.3f} s "
        f"= {report.rate:,.0f} messages/s"
    )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    print(f"(work files in {work})")


if __name__ == "__main__":
    main()
