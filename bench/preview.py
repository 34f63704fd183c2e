"""The preview studio's page for an issue of ten comparisons: how long it takes to answer.

    .venv/bin/python bench/preview.py [--runs 40] [--comparisons 10]

A SQLite store gets the seven sample comparisons plus copies up to `--comparisons`, all in this week,
composed into one draft. The studio app answers in process over httpx's ASGI transport (no socket), so
the figure is the page's own work: fingerprint, loading the issue from the store, Jinja, MJML,
premailer, the text part, personalising the preview reader, the twelve quality gates and the page.

- cold: the first request of the process (templates compiled, caches empty);
- fresh: the page after a change (the cache dropped before every request): the figure an editor waits
  for after saving a template; target < 200 ms;
- page + its 3 frames: what the browser waits for after a change (the frames reuse the page's render);
- cached: the page again with nothing changed (the poll's reload, the frames);
- the frame and the fingerprint poll.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import bench_store

from newsletter.config import Settings
from newsletter.console import create_console as create_studio
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import compose
from newsletter.samples import dated_into_week, sample_comparisons


def comparisons(count: int) -> list:
    """The samples, then copies of them under new slugs until there are `count`."""
    items = sample_comparisons()
    base = list(items)
    while len(items) < count:
        source = base[len(items) % len(base)]
        items.append(source.model_copy(update={"slug": f"{source.slug}-copy-{len(items)}"}))
    return items[:count]


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   (n={len(ordered)})"
    )


async def timed(client: httpx.AsyncClient, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await client.get(path)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response


async def run(settings: Settings, engine, week: Week, runs: int) -> None:
    app = create_studio(settings, engine)
    sources = app.state.sources
    page = f"/issues/{week.label}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        cold, response = await timed(client, page)
        assert "data-gate" in response.text
        report = sources.preview(week.label).report
        print(
            f"issue {week.label}: {len(sources.preview(week.label).view.comparisons)} comparisons, HTML "
            f"{report.html_bytes / 1000:.1f} KB, {len(report.errors)} failing check(s) "
            f"({', '.join(sorted({f.gate for f in report.errors})) or 'none'})"
        )
        print(f"page, cold (first request)     {cold * 1000:6.1f} ms")
        fresh = []
        for _ in range(runs):
            sources.forget()
            fresh.append((await timed(client, page))[0])
        print(f"page, fresh render             {figures(fresh)}")
        whole = []
        for _ in range(runs):
            sources.forget()
            started = time.perf_counter()
            await timed(client, page)
            await asyncio.gather(*(timed(client, f"{page}/email.html{q}") for q in ("", "", "?scheme=dark")))
            whole.append(time.perf_counter() - started)
        print(f"page + its 3 frames, fresh     {figures(whole)}")
        cached = [(await timed(client, page))[0] for _ in range(runs)]
        print(f"page, cached (no change)       {figures(cached)}")
        frame = [(await timed(client, f"{page}/email.html"))[0] for _ in range(runs)]
        print(f"email frame (cached)           {figures(frame)}")
        poll = [(await timed(client, f"{page}/fingerprint"))[0] for _ in range(runs)]
        print(f"fingerprint poll               {figures(poll)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--comparisons", type=int, default=10)
    args = parser.parse_args()

    _work, settings, engine = bench_store("bench-preview-", issue_size=args.comparisons)
    now = datetime.now(UTC)
    week = Week.containing(now, settings.zone)
    with session_scope(engine) as session:
        store_comparisons(
            session, dated_into_week(comparisons(args.comparisons), now, settings.zone), settings.zone
        )
        compose(session, week, settings)
    asyncio.run(run(settings, engine, week, args.runs))


if __name__ == "__main__":
    main()
