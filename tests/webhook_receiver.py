"""A real webhook receiver on 127.0.0.1 for the outgoing-webhook tests: every request is verified with
`standardwebhooks` (the specification's reference implementation, which we did not write) and
recorded. It can answer 503 for a while, refuse connections (stop listening), or stall a request
until told to go on (so a sender can be killed mid-request)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    msg_id: str
    type: str
    body: dict
    headers: dict[str, str]


@dataclass
class Receiver:
    secret: str | None = None
    mode: str = "ok"  # ok | 503 | 410 | stall
    received: list[Received] = field(default_factory=list)  # verified deliveries, in arrival order
    rejected: list[str] = field(default_factory=list)  # why a request failed verification
    requests: int = 0
    stalled: threading.Event = field(default_factory=threading.Event)  # set when a request is held
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks?token=receiver-query-token"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests += 1
                    mode = receiver.mode
                if mode == "503":
                    return self._answer(503, b"down for maintenance")
                if mode == "410":
                    return self._answer(410, b"gone")
                headers = {key.lower(): value for key, value in self.headers.items()}
                try:
                    document = Webhook(receiver.secret).verify(body, headers)
                except WebhookVerificationError as exc:
                    with receiver.lock:
                        receiver.rejected.append(str(exc))
                    return self._answer(400, b"bad signature")
                if mode == "stall":
                    receiver.stalled.set()
                    receiver.release.wait(60)
                with receiver.lock:
                    receiver.received.append(
                        Received(headers["webhook-id"], document["type"], document, headers)
                    )
                self._answer(200, b'{"ok": true}')

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until `start` again (on the same port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def types(self) -> list[str]:
        with self.lock:
            return [r.type for r in self.received]

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.received)} of {count} webhooks arrived: {self.types()}")


def body_of(received: Received) -> str:
    return json.dumps(received.body)
