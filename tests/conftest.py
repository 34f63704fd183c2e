"""Shared fixtures: every test gets its own real store (a SQLite file, or a PostgreSQL database: see
tests/databases.py), outbox directory and settings."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.samples import sample_comparisons
from tests.browser import launch
from tests.databases import ON_POSTGRES, created_count, database_url, drop_created, drop_templates, store_url

FIXTURES = Path(__file__).parent / "fixtures"
TEST_KEY = "test-signing-key-0123456789-abcdefghijklmnop"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, tests marked `sqlite_pass_only` are deselected (and counted as such):
    axe, the spam score and the screenshots judge HTML that the store's engine does not change, and they
    are the suite's slowest files, so running them twice would keep `make test` past 20 minutes."""
    if not ON_POSTGRES:
        return
    left = [item for item in items if item.get_closest_marker("sqlite_pass_only")]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if not item.get_closest_marker("sqlite_pass_only")]


@pytest.fixture(scope="module")
def browser():
    """A real Chromium per test module (Debian's, driven by Playwright). Not per session: Playwright's
    sync API keeps an event loop running while it is open, and other modules call asyncio.run."""
    yield from launch()


@pytest.fixture(scope="session", autouse=True)
def _all_databases():
    """On PostgreSQL, databases made for module-scoped fixtures are dropped when the session ends."""
    yield
    drop_created()
    drop_templates()


@pytest.fixture(autouse=True)
def _own_database():
    """On PostgreSQL, the databases a test made are dropped when it ends (not those of the wider
    fixtures it uses, such as a module's web server)."""
    before = created_count()
    yield
    drop_created(before)


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """A test's settings and its own store: empty, or (for a test that uses `engine`) a copy of one
    with the newest schema made once per worker (tests/databases.py `store_url`)."""
    return Settings(
        _env_file=None,
        database_url=store_url(tmp_path) if "engine" in request.fixturenames else database_url(tmp_path),
        outbox_dir=tmp_path / "outbox",
        secret_key=TEST_KEY,
        secret_file=tmp_path / ".newsletter-secret",
        timezone="Europe/Berlin",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)  # made with the newest schema (see `settings`)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def samples():
    """The packaged sample comparisons as validated import objects (the seed first)."""
    return sample_comparisons()


def seed_dict() -> dict:
    """The seed comparison as a plain import document, to be varied by tests."""
    return copy.deepcopy(sample_comparisons()[0].model_dump(mode="json", exclude_none=True))


def at(text: str) -> datetime:
    """An aware UTC datetime from an ISO string (a trailing Z or offset is required)."""
    return datetime.fromisoformat(text).astimezone(UTC)
