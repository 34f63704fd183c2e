"""What the commands people run most load at start-up (issue 16): `newsletter --help` and
`newsletter issue show` must stay quick, and what makes them slow is what they import. Each runs
for real in a subprocess with `python -X importtime`, which names every module the process loaded;
a test here fails when one of the heavy ones comes back (no timing: the machine's load does not
move these)."""

from __future__ import annotations

import subprocess
import sys

from sqlmodel import SQLModel

from newsletter import issue_reads, schema
from tests.commands import run
from tests.databases import ON_POSTGRES, clean_env

# Never needed to read an issue: the ORM and the table models (a third of the command's CPU
# and 12 MB), migrations, the web stack, HTTP clients, the renderer, the scheduler's machinery.
HEAVY = (
    "sqlmodel",
    "sqlalchemy.orm",
    "newsletter.models",
    "newsletter.db",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "httpx",
    "requests",
    "premailer",
    "mjml",
    "apscheduler.schedulers",
    "newsletter.render",
    "newsletter.editions",
)
# --help reads neither the settings nor a store.
HELP_HEAVY = (*HEAVY, "sqlalchemy", "pydantic", "pydantic_settings", "newsletter.config")


def loaded_by(tmp_path, *args: str) -> tuple[set[str], str]:
    """The modules `newsletter ARGS` imported (from -X importtime's lines), and its output."""
    env = clean_env(tmp_path) | {"COLUMNS": "200", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "newsletter", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "newsletter.cli" in names  # the lines were read
    return names, result.stdout


def heavy(names: set[str], banned: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if any(name == b or name.startswith(b + ".") for b in banned))


def test_issue_show_loads_no_sqlalchemy_no_models_and_nothing_of_the_web_or_the_renderer(tmp_path):
    assert run(tmp_path, "demo").returncode == 0
    names, output = loaded_by(tmp_path, "issue", "show")
    assert "Subject:" in output and "Deliveries: sent" in output
    banned = (*HEAVY, "sqlalchemy") if ON_POSTGRES else (*HEAVY, "sqlalchemy", "psycopg")
    assert heavy(names, banned) == []


def test_help_loads_neither_the_settings_nor_the_database_layer(tmp_path):
    names, output = loaded_by(tmp_path, "--help")
    assert "issue" in output
    assert heavy(names, HELP_HEAVY) == []


def test_the_checker_sees_a_heavy_module_when_one_is_loaded():
    assert heavy({"sqlalchemy.orm.session", "sqlalchemy.sql"}, HEAVY) == ["sqlalchemy.orm.session"]
    assert heavy({"alembic", "typer"}, HEAVY) == ["alembic"]


def test_the_core_reads_name_only_columns_the_models_tables_have():
    """issue_reads names its tables by hand (no models loaded); a renamed column fails here."""
    tables = schema.metadata().tables
    for name, columns in issue_reads.COLUMNS.items():
        assert name in tables, name
        assert set(columns) <= set(tables[name].c.keys()), name
    assert SQLModel.metadata is schema.metadata()
