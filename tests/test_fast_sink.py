"""bench/fast_sink.py is the far end of every send figure in bench/send.py: if it miscounted, a
sender that lost or repeated a message would pass. Run here as its own process, as the bench runs it,
with bodies that arrive in many reads, requests pipelined in one write, and requests it must refuse."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web_server import free_port

SINK = Path(__file__).resolve().parent.parent / "bench" / "fast_sink.py"
TOKEN = "sink-test-token"


@pytest.fixture
def sink() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(SINK), "--port", str(port), "--token", TOKEN])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/_sink/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def batch(addresses: list[str], body_size: int = 100) -> bytes:
    return json.dumps([{"To": a, "HtmlBody": "<p>" + "é" * body_size + "</p>"} for a in addresses]).encode()


def request(body: bytes, token: str = TOKEN) -> bytes:
    return (
        b"POST /email/batch HTTP/1.1\r\nHost: sink\r\nContent-Type: application/json\r\n"
        b"X-Postmark-Server-Token: %s\r\nContent-Length: %d\r\n\r\n" % (token.encode(), len(body))
    ) + body


def test_big_bodies_in_many_reads_are_counted_once_per_reader(sink):
    with httpx.Client(base_url=sink, headers={"X-Postmark-Server-Token": TOKEN}) as client:
        for first in range(0, 300, 100):
            addresses = [f"r{n}@example.com" for n in range(first, first + 100)]
            answers = client.post("/email/batch", content=batch(addresses, 40_000)).json()
            assert [a["To"] for a in answers] == addresses and {a["ErrorCode"] for a in answers} == {0}
        client.post("/email/batch", content=batch(["r7@example.com"]))
        counts = client.get("/_sink/counts").json()
    assert (counts["total"], counts["readers"], counts["repeated"], counts["requests"]) == (301, 300, 1, 4)


def small_writes(connection: socket.socket, wire: bytes) -> None:
    """Heads and bodies split anywhere: each write lands in a read of its own."""
    for at in range(0, len(wire), 7):
        connection.sendall(wire[at : at + 7])


def body_tail_with_next_head(connection: socket.socket, wire: bytes) -> None:
    """Most of the second body (smaller than the first, so the sink's reused buffer is longer than
    it), then, once the sink is reading that body, its tail and every later request in one write:
    the sink must stop reading at the body's end and find the next head after it."""
    second_body_ends = wire.index(b"\r\n\r\n", wire.index(b"wrong")) + 4 + len(batch(["b@example.com"]))
    connection.sendall(wire[: second_body_ends - 20])
    time.sleep(0.3)
    connection.sendall(wire[second_body_ends - 20 :])


@pytest.mark.parametrize("write", [small_writes, body_tail_with_next_head])
def test_pipelined_requests_and_refusals_on_one_connection(sink, write):
    port = int(sink.rsplit(":", 1)[1])
    wire = request(batch(["a@example.com"], 2_000)) + request(batch(["b@example.com"]), token="wrong")
    wire += request(batch(["c@example.com", "d@example.com"]))
    wire += b"POST /email/batch HTTP/1.1\r\nHost: sink\r\nTransfer-Encoding: chunked\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        write(connection, wire)
        received = b""
        while chunk := connection.recv(65536):  # the sink closes after the 411
            received += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200", b"401", b"200", b"411"]
    counts = httpx.get(f"{sink}/_sink/counts").json()
    assert (counts["total"], counts["readers"], counts["repeated"]) == (3, 3, 0)
    assert counts["cpu"] >= 0


def test_a_batch_that_is_not_json_or_too_long_is_refused_and_not_counted(sink):
    with httpx.Client(base_url=sink, headers={"X-Postmark-Server-Token": TOKEN}) as client:
        assert client.post("/email/batch", content=b"[{not json").status_code == 422
        too_many = batch([f"r{n}@example.com" for n in range(501)])
        assert client.post("/email/batch", content=too_many).status_code == 422
        assert client.get("/_sink/counts").json()["total"] == 0
