"""The store's URL is read without SQLAlchemy (newsletter/store_urls.py, for start-up: issue 16), so
it must read every URL as SQLAlchemy's `make_url` does and render it as `render_as_string` does:
the engine is made from what the settings accepted. Checked here against SQLAlchemy itself, on
hand-picked URLs and on thousands of generated ones."""

from __future__ import annotations

import random

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from newsletter.store_urls import parse_database_url, parse_url, shown_url, sqlite_path

PICKED = [
    "sqlite:///store.db",
    "sqlite:////abs/path/store.db",
    "sqlite:///~/news/store.db",
    "sqlite://",
    "sqlite:///:memory:",
    "sqlite+pysqlite:///a%20b.db",
    "postgresql://u@h/db",
    "postgresql+psycopg://user:p%40ss:w@host:5432/db?sslmode=require&application_name=news",
    "postgresql://user:pa ss+word@[::1]:5433/db",
    "postgresql://@/db?host=/run/postgresql",
    "postgresql://h:/db",
    "postgresql://h/db?a=1&a=2&b=",
    "postgresql://user@h:99999/db",
    "postgresql://us%2Fer:%3A%40@h/d%2Fb",
    "mysql://root@localhost/x",
    "postgres://u@h/db",
    "not a url",
    "://nothing",
    "postgresql://h:port/db",
    "postgresql://h?x=%zz",
]
ALPHABET = "aZ09:/@?&=%+-_.[]~ #é"


def parts_of_sqlalchemy(text: str):
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        return "refused"
    query = {key: tuple(value) if isinstance(value, tuple) else (value,) for key, value in url.query.items()}
    return (url.drivername, url.username, url.password, url.host, url.port, url.database, query)


def parts_of_ours(text: str):
    try:
        url = parse_url(text)
    except ValueError:
        return "refused"
    return (url.drivername, url.username, url.password, url.host, url.port, url.database, url.query)


def rendered(text: str, hide: bool) -> str:
    return parse_url(text).render(hide_password=hide)


def generated(count: int, seed: int = 16) -> list[str]:
    chance = random.Random(seed)
    urls = []
    for _ in range(count):
        scheme = chance.choice(["sqlite", "postgresql", "postgresql+psycopg", "sqlite+pysqlite", "pg"])
        tail = "".join(chance.choice(ALPHABET) for _ in range(chance.randint(0, 30)))
        urls.append(f"{scheme}://{tail}")
    return urls


@pytest.mark.parametrize("text", PICKED)
def test_a_picked_url_reads_and_renders_as_sqlalchemy_reads_and_renders_it(text):
    ours = parts_of_ours(text)
    assert ours == parts_of_sqlalchemy(text)
    if ours != "refused":
        for hide in (True, False):
            assert rendered(text, hide) == make_url(text).render_as_string(hide_password=hide)


def test_thousands_of_generated_urls_read_and_render_as_sqlalchemy_does():
    differ = []
    for text in generated(5000):
        ours = parts_of_ours(text)
        if ours != parts_of_sqlalchemy(text) or (
            ours != "refused"
            and rendered(text, False) != make_url(text).render_as_string(hide_password=False)
        ):
            differ.append(text)
    assert differ == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:p%40ss@h/db", "postgresql+psycopg://u:p%40ss@h/db"),
        (
            "  postgresql+psycopg://u@h:5432/db?sslmode=require  ",
            "postgresql+psycopg://u@h:5432/db?sslmode=require",
        ),
        ("sqlite+pysqlite:///store.db", "sqlite:///store.db"),
    ],
)
def test_the_accepted_spelling_is_the_one_sqlalchemy_would_render(text, expected):
    assert parse_database_url(text) == expected
    assert make_url(expected).render_as_string(hide_password=False) == expected


def test_a_password_is_masked_when_shown_and_a_file_is_found_behind_a_sqlite_url(tmp_path):
    assert shown_url("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"
    assert "secret" not in shown_url("garbage secret")
    assert sqlite_path(f"sqlite:///{tmp_path}/s.db") == tmp_path / "s.db"
    assert sqlite_path("postgresql+psycopg://u@h/db") is None
