"""What the benches share: a fresh store in a temporary directory, with settings that point at it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy.engine import Engine

from newsletter.config import Settings
from newsletter.db import create_schema, make_engine


def bench_store(prefix: str, **overrides) -> tuple[Path, Settings, Engine]:
    """(directory, settings, engine) of a new SQLite store in a temporary directory (time zone UTC)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{work / 'subscribers.db'}",
        outbox_dir=work / "outbox",
        secret_key="bench-signing-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        timezone="UTC",
        **overrides,
    )
    engine = make_engine(settings.database_url)
    create_schema(engine)
    return work, settings, engine
