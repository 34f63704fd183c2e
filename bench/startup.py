"""Start-up of the commands people and services start most: whole processes, measured from outside.

    .venv/bin/python bench/startup.py [--runs 7]

On a store made by `newsletter demo` in a temporary directory:

* `newsletter --help` and `newsletter issue show`: the whole process, start to exit;
* `newsletter worker --exit-when-idle` with nothing to send: start-up to ready, one look, exit;
* `newsletter serve`: from the start to the first answered `GET /healthz` (the app is up), and in
  other runs to the first answered `GET /` (the home page, from the store), then SIGTERM.

Each figure is the median of --runs runs (min-max beside it): wall seconds, CPU seconds (user +
system, the kernel's accounting of that process alone, wait4) and peak RSS. The load average is
printed with them: on a shared machine compare within one run. Target (issue 16, this 2-core
machine): `--help` and `issue show` under 300 ms wall and 60 MB.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.send import high_water_mb
from tests.web_server import free_port

KEY = "bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def environment(directory: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")} | {
        "NEWSLETTER_DATABASE_URL": f"sqlite:///{directory / 'subscribers.db'}",
        "NEWSLETTER_SECRET_KEY": KEY,
        "NEWSLETTER_LOG_LEVEL": "WARNING",
    }


def reap(process: subprocess.Popen, started: float) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of a process, waited for here; the peak sampled every 2 ms
    (see bench/send.py's `high_water_mb`: wait4's figure would carry this script's own)."""
    peak = 0.0
    while True:
        peak = max(peak, high_water_mb(process.pid))
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.002)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, peak


def whole(command: list[str], env: dict, cwd: Path) -> tuple[float, float, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    figures = reap(process, started)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
    return figures


def serve(env: dict, cwd: Path, path: str = "/") -> tuple[float, float, float]:
    """Wall to the first answered request for `path` (`/healthz`: up; `/`: the home page, which
    reads the store and renders); CPU and peak RSS of the whole process (to SIGTERM)."""
    port = free_port()
    started = time.perf_counter()
    command = [sys.executable, "-m", "newsletter", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.005)
            if process.poll() is not None or time.perf_counter() - started > 60:
                raise RuntimeError("newsletter serve did not answer")
        answered = time.perf_counter() - started
    finally:
        os.kill(process.pid, signal.SIGTERM)
    _, cpu, peak = reap(process, started)
    return answered, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    newsletter = [sys.executable, "-m", "newsletter"]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as work:
        directory = Path(work)
        env = environment(directory)
        whole([*newsletter, "demo"], env, directory)
        cases = {
            "newsletter --help": lambda: whole([*newsletter, "--help"], env, directory),
            "newsletter issue show": lambda: whole([*newsletter, "issue", "show"], env, directory),
            "newsletter worker (to ready, idle)": lambda: whole(
                [*newsletter, "worker", "--exit-when-idle"], env, directory
            ),
            "newsletter serve (to first /healthz)": lambda: serve(env, directory, "/healthz"),
            "newsletter serve (to first GET /)": lambda: serve(env, directory),
        }
        print(
            f"bench/startup.py: median of {args.runs} runs (min-max); {os.cpu_count()} cores; "
            "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
        )
        for name, case in cases.items():
            case()  # warm the file cache
            runs = [case() for _ in range(args.runs)]
            columns = []
            for index, (label, unit, scale) in enumerate(
                (("wall", "ms", 1000), ("CPU", "ms", 1000), ("peak RSS", "MB", 1))
            ):
                values = [run[index] * scale for run in runs]
                columns.append(
                    f"{label} {statistics.median(values):.0f} {unit} ({min(values):.0f}-{max(values):.0f})"
                )
            print(f"  {name:<36} " + ";  ".join(columns) + f"  (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
