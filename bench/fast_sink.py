"""A minimal Postmark-compatible sink that costs the sender nothing: the yardstick's other end.

    .venv/bin/python bench/fast_sink.py --port 8026 [--token emulator-token]

The project's emulator checks every message as Postmark would and spends ~0.34 ms of CPU per message
doing it, so on two cores it hides the sender. This sink is a raw asyncio HTTP/1.1 server (uvloop when
installed) that speaks only what a send needs: `POST /email/batch` with `X-Postmark-Server-Token`,
each batch parsed with orjson, answered with one result per message (`ErrorCode` 0, a `MessageID`).
It counts messages per recipient so the bench can still check that every reader got exactly one.

    GET  /_sink/counts   {"total", "readers", "repeated", "requests", "seconds"}
    POST /_sink/reset    forget everything

Run it as its own process: its CPU is then never the sender's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

    def reset(self) -> None:
        self.per_address.clear()
        self.requests = self.next_id = 0
        self.first = self.last = 0.0

    def counts(self) -> dict:
        return {
            "total": sum(self.per_address.values()),
            "readers": len(self.per_address),
            "repeated": sum(1 for n in self.per_address.values() if n != 1),
            "requests": self.requests,
            "seconds": self.last - self.first,
        }

    def batch(self, body: bytes) -> tuple[int, bytes]:
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
        self, method: bytes, path: bytes, headers: dict[bytes, bytes], body: bytes
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


async def serve_connection(sink: Sink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            lines = head[:-4].split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            path = path.split(b"?", 1)[0]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"transfer-encoding" in headers:
                status, payload = 411, b'{"Message":"send a Content-Length"}'
                body = b""
            else:
                length = int(headers.get(b"content-length", b"0"))
                if length > MAX_BODY:
                    return
                body = await reader.readexactly(length) if length else b""
                status, payload = sink.answer(method, path, headers, body)
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (status, REASONS.get(status, b"Status"), len(payload))
                + payload
            )
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close" or status == 411:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def main_async(port: int, token: str) -> None:
    sink = Sink(token)
    server = await asyncio.start_server(
        lambda r, w: serve_connection(sink, r, w), "127.0.0.1", port, limit=MAX_HEAD, backlog=64
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
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
