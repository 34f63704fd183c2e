"""A real `newsletter serve` process on 127.0.0.1 for integration and browser tests."""

from __future__ import annotations

import email
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from pathlib import Path

import httpx

from tests.conftest import TEST_KEY
from tests.databases import clean_env

# How long a server process may take to answer its first request: CI's two cores may be busy with a
# dozen other servers, browsers and a database, and a slow start is not a failing one.
START_TIMEOUT_S = float(os.environ.get("NEWSLETTER_TEST_START_TIMEOUT_S", "120"))


@dataclass
class Server:
    url: str
    directory: Path
    env: dict[str, str]

    @property
    def outbox(self) -> Path:
        return self.directory / "outbox"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def mail_to(self, address: str, kind: str = "confirm", *, timeout: float = 10, count: int = 1):
        """The newest message of `kind` sent to `address`, waiting for the app's background send."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = []
            for path in sorted((self.outbox / kind).glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
                message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
                if message["To"] == address:
                    found.append(message)
            if len(found) >= count:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no {kind} email to {address} within {timeout} s")

    def mails_to(self, address: str, kind: str) -> int:
        if not (self.outbox / kind).is_dir():
            return 0
        return sum(
            1
            for path in (self.outbox / kind).glob("*.eml")
            if email.message_from_bytes(path.read_bytes(), policy=policy.default)["To"] == address
        )


def link_in(message, path_prefix: str) -> str:
    """The first link in the text part that starts with the site URL and `path_prefix`."""
    text = message.get_body(("plain",)).get_content()
    match = re.search(rf"https://verdicts\.example\.com({re.escape(path_prefix)}[^\s]+)", text)
    assert match, f"no {path_prefix} link in:\n{text}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(directory: Path, **settings: str) -> dict[str, str]:
    """The environment of a `newsletter` process in `directory` (its own store, none of the
    developer's NEWSLETTER_* settings), plus `settings`."""
    env = clean_env(directory)
    env |= {
        "NEWSLETTER_SECRET_KEY": TEST_KEY,
        "NEWSLETTER_SIGNUP_RATE_PER_CLIENT": "10000/minute",
        "NEWSLETTER_SIGNUP_RATE_PER_ADDRESS": "50/hour",
    }
    return env | {f"NEWSLETTER_{name.upper()}": value for name, value in settings.items()}


@contextmanager
def running_server(directory: Path, **settings: str) -> Iterator[Server]:
    """Init a store with the sample content in `directory`, then serve it until the block ends."""
    server = Server(url="", directory=directory, env=server_env(directory, **settings))
    init = server.cli("init", "--sample")
    assert init.returncode == 0, init.stderr
    with serving(server, "serve"):
        yield server


@contextmanager
def serving(server: Server, command: str, *args: str) -> Iterator[Server]:
    """`newsletter <command> --port N <args>` in `server.directory` until the block ends; fails the
    test if it does not answer /healthz within START_TIMEOUT_S or logs a traceback."""
    port = free_port()
    log_path = server.directory / f"{command}.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", command, "--port", str(port), *args],
        cwd=server.directory,
        env=server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`newsletter {command}` did not start:\n" + log_path.read_text())
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if "Traceback" in log_path.read_text():
            raise AssertionError(f"`newsletter {command}` logged a traceback:\n" + log_path.read_text())
