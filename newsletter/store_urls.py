"""The store's URL: read, checked and shown with the standard library alone.

Every command reads the settings, and the settings check this URL; SQLAlchemy costs a command
~150 ms to import, and `newsletter issue show` must start in under 300 ms (issue 16). So the URL is
parsed here by SQLAlchemy's own grammar (`sqlalchemy.engine.url._parse_url`, the same pattern and
the same unquoting) and rendered as its `render_as_string` renders it; tests/test_store_urls.py
checks both against SQLAlchemy on many URLs. Only SQLite (the embedded default) and PostgreSQL
through psycopg are accepted: `parse_database_url` says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from newsletter.locations import file_problem

SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a SQLite connection waits for another's write lock
EXPECTED_URL = "sqlite:///path/to/store.db or postgresql+psycopg://user:password@host:5432/database"
# The drivers the product ships with; plain `postgresql://` means psycopg (3), whatever SQLAlchemy's
# default driver for it is in the installed release.
DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_PATTERN = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class StoreUrl:
    """A database URL's parts, as SQLAlchemy's URL holds them (a query key given twice keeps
    every value, in order)."""

    drivername: str
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """'sqlite' or 'postgresql': the part before any '+driver'."""
        return self.drivername.split("+")[0]

    def render(self, *, hide_password: bool = True) -> str:
        """The URL as text (query keys sorted), the password shown as *** unless asked for."""
        text = self.drivername + "://"
        if self.username is not None:
            text += quote(self.username, safe=" +")
            if self.password is not None:
                text += ":" + ("***" if hide_password else quote(self.password, safe=" +"))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else self.host
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe=" +/")
        if self.query:
            pairs = ((key, value) for key in sorted(self.query) for value in self.query[key])
            text += "?" + "&".join(f"{quote_plus(key)}={quote_plus(value)}" for key, value in pairs)
        return text


def parse_url(text: str) -> StoreUrl:
    """`text`'s parts, or ValueError (never quoting `text`: it may hold a password)."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError("not a URL")
    parts = match.groupdict()
    query: dict[str, tuple[str, ...]] = {}
    for key, value in parse_qsl(parts["query"] or ""):
        query[key] = (*query.get(key, ()), value)
    port = parts["port"]
    return StoreUrl(
        drivername=parts["name"],
        username=None if parts["username"] is None else unquote(parts["username"]),
        password=None if parts["password"] is None else unquote(parts["password"]),
        host=parts["ipv4host"] or parts["ipv6host"],
        port=None if port is None else int(port),  # ValueError for a port that is not a number (or "")
        database=None if parts["database"] is None else unquote(parts["database"]),
        query=query,
    )


def parse_database_url(text: str) -> str:
    """`text` as the store's URL in its one spelling, or ValueError saying what is wrong.

    The message never repeats the URL: it may hold a password.
    """
    try:
        url = parse_url(text.strip())
    except ValueError:  # no URL at all, or a port that is not a number
        raise ValueError(f"not a database URL; expected {EXPECTED_URL}") from None
    # libpq would cut a name at a NUL (and reach another database); the OS refuses it in a path
    values = [value for values in url.query.values() for value in values]
    if any("\x00" in part for part in (url.username, url.password, url.host, url.database, *values) if part):
        raise ValueError(f"the URL holds a NUL byte (%00); expected {EXPECTED_URL}")
    driver = DRIVERS.get(url.drivername.lower())
    if driver is None:
        backend = url.drivername.lower()
        hint = " (spell it postgresql+psycopg://)" if backend.split("+")[0] == "postgres" else ""
        raise ValueError(f"the database {backend!r} is not supported{hint}; expected {EXPECTED_URL}")
    if driver == "sqlite":
        return _sqlite_url(url)
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError(f"the port {url.port} is out of range (1-65535); expected {EXPECTED_URL}")
    return StoreUrl(**{**url.__dict__, "drivername": driver}).render(hide_password=False)


def _sqlite_url(url: StoreUrl) -> str:
    if url.query:
        raise ValueError(f"a SQLite URL takes no ?options; expected {EXPECTED_URL}")
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ValueError(f"an in-memory SQLite store vanishes when the command ends; expected {EXPECTED_URL}")
    if url.host or url.username or url.password or url.port:
        raise ValueError(f"a SQLite URL has three slashes and a file path; expected {EXPECTED_URL}")
    return f"sqlite:///{Path(database).expanduser()}"


def is_sqlite(url: str) -> bool:
    return parse_url(url).backend == "sqlite"


def shown_url(url: str) -> str:
    """The URL to show in a message or a log line: its password, if any, masked."""
    try:
        return parse_url(url).render(hide_password=True)
    except ValueError:
        return "(the database URL)"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and in-memory SQLite."""
    parsed = parse_url(url)
    if parsed.backend != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def sqlite_location_problem(path: Path) -> str | None:
    """Why a SQLite store cannot live at `path`, or None (see newsletter.locations: the store file is
    created, never the directories above it)."""
    return file_problem(path, "store file")
