"""A deterministic battery of hostile HTTP requests, derived from an app's OpenAPI schema.

Every operation gets each of its parameters (path, query, form field, JSON field) replaced in turn by
hostile values while the others keep working values, so each value reaches as deep into the route as
it can; then every path gets every method, wrong and absent content types, malformed JSON, hostile
headers, and bodies over the limit, announced and chunked. Requests go over a raw socket, byte for byte
as written here (an HTTP client would normalise `..`, escape what it dislikes or refuse a NUL), one
connection each.

Why not schemathesis or hypothesis: the schema says little (most parameters are plain strings), the
values that matter are known classes of trouble rather than random strings, and a fixed list runs in
the same time on every run and fails the same way twice.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from urllib.parse import quote

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

# Path segments and query or form values as they go on the wire (already percent-encoded).
WIRE_VALUES = [
    "%00",
    "a%00b",
    "%2500",
    "%ff%fe",
    "%c3%28",
    "%ed%a0%80",  # a UTF-8-encoded surrogate
    "%0d%0aSet-Cookie:%20evil=1",
    "%0a",
    "%09",
    "%7f",
    "x" * 3000,
    "x" * 15000,
    "caf%C3%A9",
    "%F0%9F%98%80",
    "%E2%80%AE",  # right-to-left override
    "%EF%BB%BF",  # a byte order mark
    "-1",
    "0",
    "99999999999999999999999999999999",
    "1e309",
    "NaN",
    "..",
    "%2e%2e",
    "..%2f..%2fetc%2fpasswd",
    "%2f%2fevil.example",
    "%5c%5cevil.example",
    "%27%20OR%201=1--",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "%25s%25n",
    "%7B0%7D",
    "%",
    "%zz",
    "+",
    "%20",
    "",
]

TROUBLE_ANYWHERE = ["%00", "%ff%fe", "%ed%a0%80", "%0d%0aSet-Cookie:%20evil=1", "x" * 3000, "%", "%zz", ""]

# JSON values for JSON fields, and whole JSON bodies that are not what an endpoint expects.
JSON_VALUES: list[object] = [
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff\ud800",
    "x" * 3000,
    "\r\nBcc: victim@example.com",
    "caf\u00e9",
    "\U0001f600",
    "\u202e",
    "-1",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "",
    None,
    True,
    -1,
    10**30,
    1e308,
    [],
    ["x"],
    {},
    {"$ne": ""},
]
RAW_JSON_BODIES = [
    b"{",
    b"[",
    b"",
    b"null",
    b"[]",
    b'"just a string"',
    b"1e999999",
    b"9" * 5000,
    b'{"email": }',
    b'{"email": "a@example.com",}',
    b'{"email": "\\ud800@example.com"}',
    b'{"email": "a\\u0000@example.com"}',
    b'{"email": "a@example.com", "email": "b@example.com"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 200 + b"1" + b"}" * 200,
    b"\xff\xfe{\x00}\x00",
    b'{"email": "\xff@example.com"}',
    b"\x00",
]
CONTENT_TYPES = [
    None,
    "text/plain",
    "application/xml",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded; charset=latin-1",
    "multipart/form-data; boundary=XX",
    "multipart/form-data",
    ";;;",
    "application/json\x7f",
]
HEADER_VARIANTS: list[list[tuple[str, str]]] = [
    [("Host", "evil.example")],
    [("Host", "127.0.0.1:1")],
    [("Origin", "null")],
    [("Origin", "https://evil.example")],
    [("Cookie", 'nl_csrf="\\000\\015\\012"')],
    [("Cookie", "nl_csrf=" + "x" * 4000)],
    [("Cookie", "nl_csrf=%00; nl_studio_csrf=%ff")],
    [("X-Forwarded-For", "not-an-address")],
    [("X-Forwarded-For", "1.2.3.4, <script>, ::ffff:127.0.0.1")],
    [("X-Forwarded-Proto", "javascript")],
    [("Accept", "application/json")],
    [("Accept", "*/*;q=" + "9" * 100)],
    [("Content-Length", "abc")],
    [("Range", "bytes=-1")],
]


@dataclass
class Attempt:
    """One request: what to send and a label that says which case it is."""

    label: str
    method: str
    target: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    chunks: list[bytes] | None = None


@dataclass
class Answer:
    status: int | None
    head: str
    body: bytes
    error: str | None = None


def send(host: str, port: int, attempt: Attempt, timeout: float = 20) -> Answer:
    """Send `attempt` on its own connection and read the answer to the end."""
    lines = [f"{attempt.method} {attempt.target} HTTP/1.1"]
    names = {name.lower() for name, _ in attempt.headers}
    if "host" not in names:
        lines.append(f"Host: {host}:{port}")
    lines += [f"{name}: {value}" for name, value in attempt.headers]
    lines.append("Connection: close")
    pieces: list[bytes] = []
    if attempt.chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        pieces = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in attempt.chunks] + [b"0\r\n\r\n"]
    elif attempt.body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(attempt.body)}")
        pieces = [attempt.body]
    elif attempt.body is not None:
        pieces = [attempt.body]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    received = b""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # The server may answer early and close; its answer may still be there to read.
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + b"".join(pieces))
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            if not received:
                return Answer(None, "", b"", "connection reset")
    head_part, _, body = received.partition(b"\r\n\r\n")
    status_line = head_part.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return Answer(status, head_part.decode("latin-1"), body, None if status else "no status line")


@dataclass
class Operation:
    method: str
    path: str  # the template, as in the schema: /vote/{token}/{comparison_slug}/...
    path_params: list[str]
    query_params: list[str]
    form_fields: dict[str, dict]
    json_fields: dict[str, dict]


def operations(schema: dict) -> list[Operation]:
    """Every operation of an OpenAPI document, with its parameters and body fields."""
    found = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            params = op.get("parameters", [])
            content = op.get("requestBody", {}).get("content", {})
            found.append(
                Operation(
                    method=method.upper(),
                    path=path,
                    path_params=[p["name"] for p in params if p["in"] == "path"],
                    query_params=[p["name"] for p in params if p["in"] == "query"],
                    form_fields=_fields(schema, content.get("application/x-www-form-urlencoded")),
                    json_fields=_fields(schema, content.get("application/json")),
                )
            )
    return found


def _fields(schema: dict, media: dict | None) -> dict[str, dict]:
    if not media:
        return {}
    body = media.get("schema", {})
    if "$ref" in body:
        body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    return dict(body.get("properties", {}))


@dataclass
class Context:
    """Working values: what each parameter holds when it is not the one under attack."""

    path_values: dict[str, str]  # parameter name, or "<path template> <name>", to a wire value
    form_values: dict[str, str]  # form field to a wire value
    json_values: dict[str, object]
    cookies: str = ""  # a Cookie header that makes the forms' CSRF check pass
    body_limit: int = 16384

    def path_value(self, op: Operation, name: str) -> str:
        return self.path_values.get(f"{op.path} {name}", self.path_values.get(name, "x"))


def fill(op: Operation, context: Context, override: tuple[str, str] | None = None) -> str:
    """The path of `op` with working values, one of them (`override`: name, wire value) replaced."""
    path = op.path
    for name in op.path_params:
        value = override[1] if override and override[0] == name else context.path_value(op, name)
        path = path.replace("{" + name + "}", value)
    return path


def form(fields: dict[str, str]) -> bytes:
    """A urlencoded body from wire values (already escaped), lists joined as repeated fields."""
    return "&".join(f"{quote(name)}={value}" for name, value in fields.items()).encode("latin-1")


def battery(schema: dict, context: Context) -> Iterator[Attempt]:
    ops = operations(schema)
    for op in ops:
        yield from _parameters(op, context)
        if op.method in ("POST", "PUT", "PATCH"):
            yield from _bodies(op, context)
    for path in sorted({op.path for op in ops}):
        probe = next(op for op in ops if op.path == path)
        target = fill(probe, context)
        for method in METHODS:
            yield Attempt(f"{method} on {path}", method, target)
            yield Attempt(f"{method} on {path}/ (trailing slash)", method, target.rstrip("/") + "/")
        for headers in HEADER_VARIANTS:
            yield Attempt(f"{probe.method} {path} with {headers}", probe.method, target, headers, b"")
    yield from _odd_targets()


def _parameters(op: Operation, context: Context) -> Iterator[Attempt]:
    headers = [("Cookie", context.cookies)] if context.cookies else []
    body = _working_form(op, context) if op.form_fields else None
    if body is not None:
        headers = [*headers, ("Content-Type", "application/x-www-form-urlencoded")]
    for name in op.path_params:
        for value in WIRE_VALUES:
            target = fill(op, context, (name, value))
            yield Attempt(f"{op.method} {op.path} {name}={value[:30]!r}", op.method, target, headers, body)
    base = fill(op, context)
    # Declared parameters get every value; an undeclared one (ignored by the route, but still read by
    # the app's guards) the values that are trouble anywhere.
    for name, values in [*((name, WIRE_VALUES) for name in op.query_params), ("x", TROUBLE_ANYWHERE)]:
        for value in values:
            yield Attempt(
                f"{op.method} {op.path} ?{name}={value[:30]!r}",
                op.method,
                f"{base}?{name}={value}",
                headers,
                body,
            )
    yield Attempt(f"{op.method} {op.path} ?&&==&=", op.method, f"{base}?&&==&=%", headers, body)


def _working_form(op: Operation, context: Context) -> bytes:
    return form({name: context.form_values.get(name, "x") for name in op.form_fields})


def _bodies(op: Operation, context: Context) -> Iterator[Attempt]:
    target = fill(op, context)
    cookie = [("Cookie", context.cookies)] if context.cookies else []
    as_form = [*cookie, ("Content-Type", "application/x-www-form-urlencoded")]
    as_json = [*cookie, ("Content-Type", "application/json")]
    # A route that declares no form still gets one (it must not choke on it): a known field and another.
    declared = op.form_fields or {"email": {}, "x": {}}
    fields = {name: context.form_values.get(name, "x") for name in declared}
    for name in list(fields):
        for value in WIRE_VALUES:
            body = form(fields | {name: value})
            yield Attempt(
                f"{op.method} {op.path} form {name}={value[:30]!r}", op.method, target, as_form, body
            )
    yield Attempt(
        f"{op.method} {op.path} form repeated", op.method, target, as_form, form(fields) * 1 + b"&a" * 3000
    )
    json_fields = dict.fromkeys(op.json_fields) or dict.fromkeys(context.json_values)
    working = {name: context.json_values.get(name, "x") for name in json_fields}
    for name in working:
        for value in JSON_VALUES:
            body = json.dumps(working | {name: value}).encode("utf-8", "surrogatepass")
            yield Attempt(
                f"{op.method} {op.path} json {name}={value!r:.30}", op.method, target, as_json, body
            )
    for raw in RAW_JSON_BODIES:
        yield Attempt(f"{op.method} {op.path} raw json {raw[:30]!r}", op.method, target, as_json, raw)
    for kind in CONTENT_TYPES:
        headers = [*cookie, *([("Content-Type", kind)] if kind is not None else [])]
        for body in (form(fields), json.dumps(working).encode(), _multipart(fields)):
            yield Attempt(f"{op.method} {op.path} as {kind!r}", op.method, target, headers, body)
    over = b"email=" + b"a" * (context.body_limit + 10)
    yield Attempt(f"{op.method} {op.path} announced over the limit", op.method, target, as_form, over)
    yield Attempt(
        f"{op.method} {op.path} chunked over the limit",
        op.method,
        target,
        as_form,
        chunks=[over[i : i + 4096] for i in range(0, len(over), 4096)],
    )
    yield Attempt(
        f"{op.method} {op.path} JSON chunked over the limit",
        op.method,
        target,
        as_json,
        chunks=[b'{"email": "' + b"a" * 4096] * (context.body_limit // 4096 + 2) + [b'"}'],
    )
    yield Attempt(f"{op.method} {op.path} chunked, small", op.method, target, as_form, chunks=[form(fields)])
    yield Attempt(
        f"{op.method} {op.path} lying length",
        op.method,
        target,
        [*as_form, ("Content-Length", "99999999999999999999")],
        b"email=a",
    )


def _multipart(fields: dict[str, str]) -> bytes:
    parts = [
        b'--XX\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (name.encode(), b"a\x00b")
        for name in fields
    ]
    parts.append(
        b'--XX\r\nContent-Disposition: form-data; name="file"; filename="../../x"\r\n\r\n\x00\xff\r\n'
    )
    return b"".join(parts) + b"--XX--\r\n"


def _odd_targets() -> Iterator[Attempt]:
    """Request targets that no client library would send."""
    for target in (
        "//evil.example/",
        "//evil.example/issues/",
        "/\\evil.example/issues/",
        "/%2f%2fevil.example/issues/",
        "/issues//",
        "/issues/?next=//evil.example",
        "/../../etc/passwd",
        "/./issues",
        "/issues/%2e%2e/%2e%2e/",
        "*",
        "http://evil.example/issues/",
        "/" + "a/" * 2000,
        "/%00/",
        "/%ff/",
        "/issues%00/",
        "/?%00=%00",
        "/compare/" + "%41" * 3000,
    ):
        for method in ("GET", "POST", "OPTIONS"):
            yield Attempt(
                f"{method} odd target {target[:40]!r}", method, target, body=b"" if method == "POST" else None
            )
