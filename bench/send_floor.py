"""The floor of a Postmark send: a bare Python loop with no store, the yardstick for `bench/send.py`.

    .venv/bin/python bench/send_floor.py --url http://127.0.0.1:8026 --issue issue.json \
        [--readers 100000] [--batch 100] [--concurrency 4] [--mode pre-encoded|dumps]

`issue.json` (written by bench/send.py from the real render) holds the issue's HTML and text with
`\\x00token\\x00` and `\\x00email\\x00` where a reader's values go, and the header fields. Modes:

* pre-encoded (the floor): the HTML and text JSON-escaped once, each message a join of those pieces
  with the reader's token and address, a batch a join of its messages; one httpx AsyncClient pool,
  `--concurrency` requests in flight; each answer parsed and checked.
* dumps (what most people write): the same messages as dicts, `json.dumps` per batch.

Every message carries what the project's Postmark adapter sends (From, To, Subject, Tag, the
List-Unsubscribe headers, Metadata, MessageStream, both bodies): the same bytes on the wire, built
the cheapest way Python allows. Prints one JSON line: messages, seconds, CPU seconds, peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import sys
import time

import httpx

MARKER = re.compile("\x00(token|email)\x00")


def escaped(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False)[1:-1].encode()


def token_for(n: int) -> str:
    """A stand-in for the reader's signed token, of about the same length."""
    return f"{n:x}.mk4v2q.{'q' * 22}"


class PreEncoded:
    """A message is pre-encoded pieces joined with the reader's few values."""

    def __init__(self, issue: dict):
        def pieces(text: str) -> tuple[list[bytes], list[str]]:
            parts = MARKER.split(text)
            return [escaped(p) for p in parts[0::2]], parts[1::2]

        self.html, self.html_fields = pieces(issue["html"])
        self.text, self.text_fields = pieces(issue["text"])
        head = json.dumps
        self.a = ('{"From":' + head(issue["from"], ensure_ascii=False) + ',"To":"').encode()
        self.b = (
            '","Subject":' + head(issue["subject"], ensure_ascii=False) + ',"Tag":' + head(issue["tag"]) + ","
            '"Headers":[{"Name":"List-Unsubscribe","Value":"<' + issue["site"] + "/unsubscribe/"
        ).encode()
        self.c = (
            '>"},{"Name":"List-Unsubscribe-Post","Value":"List-Unsubscribe=One-Click"},'
            '{"Name":"List-Id","Value":' + head(issue["list_id"], ensure_ascii=False) + "}],"
            '"Metadata":{"issue":' + head(issue["tag"]) + ',"delivery":"'
        ).encode()
        self.d = b'","subscriber":"'
        self.e = b'","batch":"'
        self.f = b'"},"MessageStream":"broadcast","TrackOpens":false,"TrackLinks":"None","HtmlBody":"'
        self.g = b'","TextBody":"'

    @staticmethod
    def join(literals: list[bytes], fields: list[str], values: dict[str, bytes]) -> list[bytes]:
        out = [literals[0]]
        for name, literal in zip(fields, literals[1:], strict=True):
            out += [values[name], literal]
        return out

    def message(self, n: int, batch: str) -> bytes:
        email = f"reader{n}@example.com".encode()
        values = {"token": token_for(n).encode(), "email": email}
        number = str(n).encode()
        head = [
            self.a,
            email,
            self.b,
            values["token"],
            self.c,
            number,
            self.d,
            number,
            self.e,
            batch.encode(),
        ]
        html = self.join(self.html, self.html_fields, values)
        text = self.join(self.text, self.text_fields, values)
        return b"".join([*head, self.f, *html, self.g, *text, b'"}'])

    def batch(self, numbers: range, key: str) -> bytes:
        return b"[" + b",".join(self.message(n, key) for n in numbers) + b"]"


class Dumps:
    """The same messages as dicts, serialised with json.dumps per batch."""

    def __init__(self, issue: dict):
        self.issue = issue

    def message(self, n: int, key: str) -> dict:
        issue, token, email = self.issue, token_for(n), f"reader{n}@example.com"
        return {
            "From": issue["from"],
            "To": email,
            "Subject": issue["subject"],
            "Tag": issue["tag"],
            "Headers": [
                {"Name": "List-Unsubscribe", "Value": f"<{issue['site']}/unsubscribe/{token}>"},
                {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                {"Name": "List-Id", "Value": issue["list_id"]},
            ],
            "Metadata": {"issue": issue["tag"], "delivery": str(n), "subscriber": str(n), "batch": key},
            "MessageStream": "broadcast",
            "TrackOpens": False,
            "TrackLinks": "None",
            "HtmlBody": issue["html"].replace("\x00token\x00", token).replace("\x00email\x00", email),
            "TextBody": issue["text"].replace("\x00token\x00", token).replace("\x00email\x00", email),
        }

    def batch(self, numbers: range, key: str) -> bytes:
        return json.dumps([self.message(n, key) for n in numbers]).encode()


async def run(args, builder) -> int:
    headers = {"X-Postmark-Server-Token": args.token, "Content-Type": "application/json"}
    accepted = 0
    starts = iter(range(0, args.readers, args.batch))
    async with httpx.AsyncClient(
        base_url=args.url,
        headers=headers,
        timeout=60,
        limits=httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency),
    ) as client:

        async def worker() -> None:
            nonlocal accepted
            for start in starts:
                numbers = range(start, min(start + args.batch, args.readers))
                body = builder.batch(numbers, f"floor{start}")
                response = await client.post("/email/batch", content=body)
                response.raise_for_status()
                answers = response.json()
                if len(answers) != len(numbers) or any(a["ErrorCode"] != 0 for a in answers):
                    raise RuntimeError("the sink refused a message")
                accepted += len(answers)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--issue", required=True, help="The issue's bodies and header fields (JSON).")
    parser.add_argument("--token", default="emulator-token")
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--mode", choices=["pre-encoded", "dumps"], default="pre-encoded")
    args = parser.parse_args()
    with open(args.issue, encoding="utf-8") as handle:
        issue = json.load(handle)
    builder = PreEncoded(issue) if args.mode == "pre-encoded" else Dumps(issue)
    started, cpu = time.perf_counter(), os.times()
    sent = asyncio.run(run(args, builder))
    after = os.times()
    print(
        json.dumps(
            {
                "messages": sent,
                "seconds": time.perf_counter() - started,
                "cpu": after.user + after.system - cpu.user - cpu.system,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )
    sys.exit(0 if sent == args.readers else 1)


if __name__ == "__main__":
    main()
