"""The provider emulator as a real process on 127.0.0.1, and helpers to ask it what it received."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from newsletter.emulator import DEFAULT_TOKEN
from tests.web_server import START_TIMEOUT_S, free_port


@dataclass
class EmulatorProcess:
    url: str
    process: subprocess.Popen

    def get(self, name: str, **params):
        return httpx.get(f"{self.url}/_emulator/{name}", params=params, timeout=30).json()

    def post(self, name: str, payload: dict | None = None):
        return httpx.post(f"{self.url}/_emulator/{name}", json=payload or {}, timeout=60).json()

    def counts(self) -> dict[str, int]:
        return self.get("counts")["per_address"]

    def requests(self) -> dict[str, int]:
        return self.get("counts")["requests"]

    def messages(
        self, to: str | None = None, provider: str | None = None, bodies: bool = False
    ) -> list[dict]:
        params = {
            k: v for k, v in {"to": to, "provider": provider, "bodies": "1" if bodies else None}.items() if v
        }
        return self.get("messages", **params)["messages"]

    def faults(self, **faults) -> None:
        defaults = {"fail_rate": 0.0, "drop_rate": 0.0, "latency_ms": 0.0, "answer_delay_ms": 0.0}
        self.post("faults", defaults | faults)

    def reset(self) -> None:
        self.post("reset")
        self.faults()

    def provider_settings(self, provider: str) -> dict:
        """Settings that point the sender at this emulator as `provider`."""
        return {
            "provider": provider,
            "api_base_url": self.url,
            "postmark_server_token": DEFAULT_TOKEN,
            "resend_api_key": DEFAULT_TOKEN,
            "sendgrid_api_key": DEFAULT_TOKEN,
            "mailgun_api_key": DEFAULT_TOKEN,
            "mailgun_domain": "mg.example.com",
        }

    def provider_env(self, provider: str) -> dict[str, str]:
        return {
            "NEWSLETTER_PROVIDER": provider,
            "NEWSLETTER_API_BASE_URL": self.url,
            "POSTMARK_SERVER_TOKEN": DEFAULT_TOKEN,
            "RESEND_API_KEY": DEFAULT_TOKEN,
            "SENDGRID_API_KEY": DEFAULT_TOKEN,
            "MAILGUN_API_KEY": DEFAULT_TOKEN,
            "MAILGUN_DOMAIN": "mg.example.com",
        }


@contextmanager
def running_emulator(*args: str) -> Iterator[EmulatorProcess]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "emulator", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    emulator = EmulatorProcess(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                httpx.get(f"{emulator.url}/_emulator/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "the emulator did not start: " + process.stderr.read().decode()
                    ) from None
                time.sleep(0.05)
        yield emulator
    finally:
        process.terminate()
        process.wait(timeout=10)
