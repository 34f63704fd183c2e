"""Signup throughput and latency against the real app, and the speed of a 100,000-row CSV import.

    .venv/bin/python bench/signup.py [--signups 3000] [--concurrency 16] [--seconds 30] [--rows 100000]

Starts `newsletter serve` (uvicorn, SQLite, outbox provider) on 127.0.0.1 in a temporary directory,
then a load client over loopback posts JSON signups for distinct addresses with bounded concurrency,
bounded in count and time. Each signup stores a pending reader and its event, and the app writes the
confirmation .eml after the response. Then `newsletter subscribers import` loads a generated CSV.
Targets (issue 3, this 2-core machine): >= 300 signups/s with p99 < 100 ms; 100,000 rows < 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.web_server import running_server


async def load(
    url: str, count: int, concurrency: int, seconds: float, prefix: str = ""
) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal failures
            while time.perf_counter() < deadline:
                try:
                    n = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                started = time.perf_counter()
                response = await client.post(
                    "/api/subscribe", json={"email": f"{prefix}bench{n}@example.com"}
                )
                latencies.append(time.perf_counter() - started)
                if response.status_code != 202:
                    failures += 1

        # Warm the connection pool and the app before timing.
        await client.post("/api/subscribe", json={"email": f"{prefix}warmup@example.com"})
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, elapsed, failures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signups", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-signup-") as work, running_server(Path(work)) as server:
        for round_, concurrency in enumerate(args.concurrency):
            latencies, elapsed, failures = asyncio.run(
                load(server.url, args.signups, concurrency, args.seconds, prefix=f"r{round_}-")
            )
            done = len(latencies)
            ordered = sorted(latencies)
            p99 = ordered[min(done - 1, int(done * 0.99))]
            print(
                f"signups: {done} in {elapsed:.2f} s = {done / elapsed:,.0f}/s with {concurrency} concurrent "
                f"clients ({failures} not 202); latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
                f"p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
            )
        time.sleep(1)
        written = len(list((server.outbox / "confirm").glob("*.eml")))
        print(f"confirmation emails written: {written}")

        csv = Path(work) / "list.csv"
        with csv.open("w") as handle:
            handle.write("email,name\n")
            handle.writelines(f"import{n}@example.org,Reader {n}\n" for n in range(args.rows))
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "newsletter", "subscribers", "import", str(csv)],
            cwd=work,
            env=server.env | {"COLUMNS": "200"},
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.perf_counter() - started
        print(
            f"CSV import of {args.rows:,} rows (whole command, process start included): {took:.2f} s "
            f"= {args.rows / took:,.0f} rows/s"
        )
        print("  " + (result.stdout.strip().splitlines() or [result.stderr.strip()])[0])
        if os.environ.get("BENCH_KEEP"):
            print(f"(work directory {work})")


if __name__ == "__main__":
    main()
