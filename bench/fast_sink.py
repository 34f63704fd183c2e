"""A minimal Postmark-compatible sink that costs the sender nothing: the yardstick's other end.

    .venv/bin/python bench/fast_sink.py --port 8026 [--token emulator-token]

The project's emulator checks every message as Postmark would and spends ~0.34 ms of CPU per message
doing it, so on two cores it hides the sender. This sink is a raw asyncio HTTP/1.1 server (uvloop when
installed) that speaks only what a send needs: `POST /email/batch` with `X-Postmark-Server-Token`,
each batch parsed with orjson, answered with one result per message (`ErrorCode` 0, a `MessageID`).
It counts messages per recipient so the bench can still check that every reader got exactly one.

    GET  /_sink/counts   {"total", "readers", "repeated", "requests", "seconds", "cpu"}
    POST /_sink/reset    forget everything

Run it as its own process: its CPU is then never the sender's.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections import Counter

import orjson

MAX_HEAD = 64 * 1024
MAX_BODY = 60 * 1000 * 1000  # Postmark's 50 MB, with room


class Sink:
    def __init__(self, token: str):
        self.token = token.encode()
        self.per_address: Counter[str] = Counter()
        self.requests = 0
        self.next_id = 0
        self.first = self.last = 0.0
        self.cpu_from = time.process_time()

    def reset(self) -> None:
        self.per_address.clear()
        self.requests = self.next_id = 0
        self.first = self.last = 0.0
        self.cpu_from = time.process_time()

    def counts(self) -> dict:
        return {
            "total": sum(self.per_address.values()),
            "readers": len(self.per_address),
            "repeated": sum(1 for n in self.per_address.values() if n != 1),
            "requests": self.requests,
            "seconds": self.last - self.first,
            "cpu": time.process_time() - self.cpu_from,  # this sink's own CPU since the reset
        }

    def batch(self, body: bytes | memoryview) -> tuple[int, bytes]:
        try:
            messages = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 422, orjson.dumps({"ErrorCode": 402, "Message": "Received invalid JSON input."})
        if not isinstance(messages, list) or len(messages) > 500:
            return 422, orjson.dumps({"ErrorCode": 300, "Message": "A batch holds at most 500 messages."})
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        self.requests += 1
        results = []
        for message in messages:
            to = message.get("To") if isinstance(message, dict) else None
            if not to or not (message.get("HtmlBody") or message.get("TextBody")):
                results.append({"ErrorCode": 300, "Message": "Invalid email request"})
                continue
            self.per_address[to] += 1
            self.next_id += 1
            results.append({"To": to, "MessageID": f"sink-{self.next_id}", "ErrorCode": 0, "Message": "OK"})
        return 200, orjson.dumps(results)

    def answer(
        self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes | memoryview
    ) -> tuple[int, bytes]:
        if path == b"/email/batch" and method == b"POST":
            if headers.get(b"x-postmark-server-token") != self.token:
                return 401, orjson.dumps({"ErrorCode": 10, "Message": "Invalid Server token."})
            return self.batch(body)
        if path == b"/_sink/counts":
            return 200, orjson.dumps(self.counts())
        if path == b"/_sink/reset" and method == b"POST":
            self.reset()
            return 200, b"{}"
        if path == b"/_sink/health":
            return 200, b"{}"
        return 404, orjson.dumps({"ErrorCode": 404, "Message": "not here"})


REASONS = {
    200: b"OK",
    401: b"Unauthorized",
    404: b"Not Found",
    411: b"Length Required",
    422: b"Unprocessable",
}


class Connection(asyncio.BufferedProtocol):
    """One keep-alive HTTP/1.1 connection. Bodies are read straight into one buffer that the
    connection keeps and reuses (no stream buffer growing, no copy out of it): a batch of 100 issues
    is ~10 MB, and reading it through asyncio's StreamReader cost this sink ~90 us of CPU per message
    in copies and page faults, on top of orjson's ~140 us, which made the sink, not the sender, the
    bound on a send's wall time."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.chunk = bytearray(256 * 1024)  # where the socket's bytes land while a head is read
        self.pending = bytearray()  # a head read so far
        self.body = bytearray()  # reused; grown to the largest body seen
        self.length = self.filled = 0
        self.request: tuple[bytes, bytes, dict[bytes, bytes]] | None = None  # a head whose body is due
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview | bytearray:
        if self.request is not None:
            return memoryview(self.body)[self.filled : self.length]
        return self.chunk

    def buffer_updated(self, nbytes: int) -> None:
        if self.request is not None:
            self.filled += nbytes
            if self.filled == self.length:  # never past it: `get_buffer` ends at the body's end
                self.answer()
            return
        self.pending += memoryview(self.chunk)[:nbytes]
        self.take_heads()

    def take_heads(self) -> None:
        """Read every complete head in `pending` (and any body bytes that came with it)."""
        while self.request is None and not self.transport.is_closing():
            end = self.pending.find(b"\r\n\r\n")
            if end < 0:
                if len(self.pending) > MAX_HEAD:
                    self.transport.close()
                return
            head, rest = bytes(self.pending[:end]), self.pending[end + 4 :]
            self.pending = bytearray()
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"transfer-encoding" in headers:
                self.respond(411, b'{"Message":"send a Content-Length"}', close=True)
                return
            length = int(headers.get(b"content-length", b"0"))
            if length > MAX_BODY:
                self.transport.close()
                return
            if len(self.body) < length:
                self.body = bytearray(length)
            taken = min(length, len(rest))
            self.body[:taken] = rest[:taken]
            self.pending = rest[taken:]
            self.request, self.length, self.filled = (method, path.split(b"?", 1)[0], headers), length, taken
            if taken == length:
                self.answer()

    def answer(self) -> None:
        method, path, headers = self.request
        self.request = None
        status, payload = self.sink.answer(method, path, headers, memoryview(self.body)[: self.length])
        self.respond(status, payload, close=headers.get(b"connection", b"").lower() == b"close")

    def respond(self, status: int, payload: bytes, *, close: bool) -> None:
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, REASONS.get(status, b"Status"), len(payload))
            + payload
        )
        if close:
            self.transport.close()


async def main_async(port: int, token: str) -> None:
    sink = Sink(token)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(sink), "127.0.0.1", port, backlog=64)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default="emulator-token")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_async(args.port, args.token))
    else:
        uvloop.run(main_async(args.port, args.token))


if __name__ == "__main__":
    main()
