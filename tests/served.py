"""A real `newsletter serve` or `newsletter preview` on `--port 0`, its log kept for the test to read.

Unlike `tests.web_server.serving`, the process picks its own free port and says which (the test of
`--port 0` itself), runs unbuffered so its log can be read while it runs, and leaves judging the log
to the test (which may provoke a traceback on purpose).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.web_server import START_TIMEOUT_S, Server

ANNOUNCED = re.compile(r"(?:Web app|Console) on (http://[^\s/]+)/")


@dataclass
class Process:
    url: str
    log_path: Path
    popen: subprocess.Popen

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def launched(server: Server, command: str, *args: str, name: str | None = None) -> Iterator[Process]:
    """`newsletter <command> --port 0 <args>` in `server.directory`; sets `server.url` to the
    address it announces and stops it when the block ends (the log stays in the file)."""
    log_path = server.directory / f"{name or command}.log"
    env = server.env | {"PYTHONUNBUFFERED": "1"}
    with log_path.open("w") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "newsletter", command, "--port", "0", *args],
            cwd=server.directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        process = Process(url="", log_path=log_path, popen=popen)
        try:
            process.url = _announced(process)
            server.url = process.url
            yield process
        finally:
            popen.terminate()
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def _announced(process: Process) -> str:
    """The URL the process prints once it listens, checked by its /healthz."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        match = ANNOUNCED.search(process.log())
        if match:
            response = httpx.get(f"{match[1]}/healthz", timeout=5)
            assert response.status_code == 200, response.text
            return match[1]
        if process.popen.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError("the process announced no address:\n" + process.log())
