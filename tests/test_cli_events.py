"""Every change to the store is an editor event with who and when, wherever it was made: the console
(tests/test_console_services.py), a command (`cli:<user>`, run for real in a subprocess here) or the
scheduler on its own (`scheduler`). A refused or dry-run command writes none. The list of commands
is checked against the command tree, so a new command must say whether it changes anything."""

from __future__ import annotations

import asyncio
import getpass
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from newsletter import editor_log, scheduling
from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.db import create_schema, make_engine, session_scope
from newsletter.delivery import Sender
from newsletter.editions import approve, compose, find_issue
from newsletter.models import Delivery, DeliveryStatus, EditorEvent, IssueStatus
from newsletter.outgoing_webhooks import endpoints
from newsletter.providers import make_provider
from newsletter.samples import load_samples, sample_comparisons
from newsletter.subscriptions import add_active
from tests.conftest import TEST_KEY, seed_dict
from tests.databases import clean_env, database_url

READERS = ("ada@example.com", "grace@example.com", "linus@example.com")
WHO = f"cli:{getpass.getuser()}"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url(tmp_path),
        secret_key=TEST_KEY,
        outbox_dir=tmp_path / "outbox",
        timezone="UTC",
        send_mode="inline",
    )


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(tmp_path) | {
        "NEWSLETTER_SECRET_KEY": TEST_KEY,
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_TIMEZONE": "UTC",
        "NEWSLETTER_SEND_MODE": "inline",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- the states a command starts from ------------------------------------------------------------------


def this_week(settings: Settings) -> Week:
    return Week.containing(datetime.now(UTC), settings.zone)


def base(settings: Settings, tmp_path: Path) -> None:
    """A store with the sample comparisons in this week and three readers."""
    engine = make_engine(settings.database_url)
    create_schema(engine)
    with session_scope(engine) as session:
        load_samples(session, settings.zone, datetime.now(UTC))
        add_active(session, READERS, source="test", key=TEST_KEY.encode())
    engine.dispose()


def draft(settings: Settings, tmp_path: Path) -> None:
    base(settings, tmp_path)
    with _session(settings) as session:
        compose(session, this_week(settings), settings)


def approved(settings: Settings, tmp_path: Path) -> None:
    draft(settings, tmp_path)
    with _session(settings) as session:
        approve(session, find_issue(session, this_week(settings)), settings)


def failed_once(settings: Settings, tmp_path: Path) -> None:
    """This week's issue sent, one delivery of it failed (as a provider outage leaves it)."""
    approved(settings, tmp_path)
    engine = make_engine(settings.database_url)
    with session_scope(engine) as session:
        issue_id = find_issue(session, this_week(settings)).id
    provider = make_provider(settings)

    async def send():
        try:
            await Sender(engine, settings, provider).send(issue_id)
        finally:
            await provider.aclose()

    asyncio.run(send())
    with session_scope(engine) as session:
        first = session.exec(select(Delivery.id).where(Delivery.issue_id == issue_id).limit(1)).one()
        session.execute(
            update(Delivery)
            .where(Delivery.id == first)
            .values(status=DeliveryStatus.FAILED, last_error="503 from the provider")
        )
    engine.dispose()


def webhook(settings: Settings, tmp_path: Path) -> None:
    base(settings, tmp_path)
    with _session(settings) as session:
        endpoints.add(session, "https://hooks.example.com/in", "all", key=settings.signing_key())


def nothing(settings: Settings, tmp_path: Path) -> None:
    """No store at all: the command makes it."""


def _session(settings: Settings):
    return session_scope(make_engine(settings.database_url))


def comparison_file(tmp_path: Path) -> str:
    document = seed_dict() | {"slug": "a-new-comparison", "title": "A new comparison"}
    path = tmp_path / "new.json"
    path.write_text(json.dumps(document))
    return str(path)


def readers_file(tmp_path: Path) -> str:
    path = tmp_path / "readers.csv"
    path.write_text("email\nnew1@example.com\nnew2@example.com\n")
    return str(path)


SLUG = sample_comparisons()[0].slug


@dataclass
class Case:
    setup: Callable[[Settings, Path], None]
    args: Callable[[Path], list[str]]
    actions: list[str]
    issue: bool = False  # the events name this week's issue


# Every command that changes the store, with the events it must write.
CHANGES = {
    "init": Case(nothing, lambda _: ["init", "--sample"], ["import"]),
    "import": Case(base, lambda p: ["import", comparison_file(p)], ["import"]),
    "comparisons pin": Case(base, lambda _: ["comparisons", "pin", SLUG], ["pin"]),
    "comparisons pin --unpin": Case(base, lambda _: ["comparisons", "pin", SLUG, "--unpin"], ["unpin"]),
    "issue compose": Case(base, lambda _: ["issue", "compose"], ["compose"], issue=True),
    "issue edit": Case(draft, lambda _: ["issue", "edit", "--subject", "Two tools"], ["edit"], issue=True),
    "issue approve": Case(draft, lambda _: ["issue", "approve"], ["approve"], issue=True),
    "issue unapprove": Case(approved, lambda _: ["issue", "unapprove"], ["unapprove"], issue=True),
    "issue cancel": Case(draft, lambda _: ["issue", "cancel"], ["cancel"], issue=True),
    "issue send": Case(approved, lambda _: ["issue", "send"], ["send"], issue=True),
    "issue retry": Case(failed_once, lambda _: ["issue", "retry"], ["retry"], issue=True),
    "subscribers add": Case(base, lambda _: ["subscribers", "add", "new@example.com"], ["add readers"]),
    "subscribers import": Case(
        base, lambda p: ["subscribers", "import", readers_file(p)], ["import readers"]
    ),
    "webhooks add": Case(
        base, lambda _: ["webhooks", "add", "https://hooks.example.com/x", "--events", "all"], ["webhook add"]
    ),
    "webhooks remove": Case(webhook, lambda _: ["webhooks", "remove", "1"], ["webhook remove"]),
    "webhooks enable": Case(webhook, lambda _: ["webhooks", "enable", "1"], ["webhook enable"]),
    "webhooks disable": Case(webhook, lambda _: ["webhooks", "disable", "1"], ["webhook disable"]),
    "webhooks rotate": Case(webhook, lambda _: ["webhooks", "rotate", "1"], ["webhook rotate"]),
    "demo": Case(nothing, lambda _: ["demo"], ["import", "add readers", "compose", "send"]),
}
# Commands that change nothing an editor decides: they read, render, serve, or run the machinery
# (a send the scheduler or a worker makes writes the scheduler's own events).
NO_CHANGE = {
    "issue show",
    "issue check",
    "issue status",
    "issue report",
    "render",
    "stats",
    "comparisons list",
    "subscribers export",
    "subscribers stats",
    "webhooks list",
    "webhooks test",
    "webhooks deliver",
    "schedule show",
    "db upgrade",
    "db current",
    "db copy",
    "emulator",
    "scheduler",
    "worker",
    "preview",
    "console",
    "console hash-password",
    "serve",
}


def events(settings: Settings) -> list[EditorEvent]:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(EditorEvent).order_by(EditorEvent.id)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_command_that_changes_the_store_writes_who_and_when(tmp_path, name):
    case = CHANGES[name]
    settings = settings_for(tmp_path)
    case.setup(settings, tmp_path)
    before = events(settings) if case.setup is not nothing else []
    started = datetime.now(UTC) - timedelta(seconds=1)
    done = run(tmp_path, *case.args(tmp_path))
    assert done.returncode == 0, done.stderr
    new = events(settings)[len(before) :]
    assert [event.action for event in new] == case.actions, done.stdout
    assert {event.editor for event in new} == {WHO}
    assert all(started <= event.at <= datetime.now(UTC) for event in new)
    if case.issue:
        with _session(settings) as session:
            issue_id = find_issue(session, this_week(settings)).id
        assert {event.issue_id for event in new} == {issue_id}


def test_every_command_says_whether_it_changes_the_store():
    from typer.main import get_command

    from newsletter.cli import app

    def names(command, prefix=""):
        for name, sub in getattr(command, "commands", {}).items():
            yield from names(sub, f"{prefix}{name} ")
        if not getattr(command, "commands", None) or getattr(command, "invoke_without_command", False):
            yield prefix.strip()

    found = {name for name in names(get_command(app)) if name}
    listed = {name.removesuffix(" --unpin") for name in CHANGES} | NO_CHANGE
    assert found == listed, f"not listed: {found - listed}; gone: {listed - found}"


def test_a_refused_or_dry_run_command_writes_no_event(tmp_path):
    settings = settings_for(tmp_path)
    draft(settings, tmp_path)
    before = len(events(settings))
    assert run(tmp_path, "issue", "unapprove").returncode == 1  # a draft is not approved
    assert run(tmp_path, "comparisons", "pin", "no-such-comparison").returncode == 1
    assert run(tmp_path, "subscribers", "import", readers_file(tmp_path), "--dry-run").returncode == 0
    assert len(events(settings)) == before


def test_the_scheduler_writes_its_own_compose_approve_and_send(tmp_path):
    settings = settings_for(tmp_path).model_copy(update={"auto_approve": True})
    base(settings, tmp_path)
    engine = make_engine(settings.database_url)
    scheduling.set_context(scheduling.Context(settings, engine, threading.Event()))
    now = datetime.now(UTC)
    assert "approved" in scheduling.compose_job(now)
    assert "3 sent" in scheduling.send_job(now)
    new = events(settings)
    assert [(event.editor, event.action) for event in new] == [
        (editor_log.SCHEDULER, "compose"),
        (editor_log.SCHEDULER, "approve"),
        (editor_log.SCHEDULER, "send"),
    ]
    with Session(engine) as session:
        issue = find_issue(session, this_week(settings))
        assert issue.status == IssueStatus.SENT
        assert {event.issue_id for event in new} == {issue.id}
    engine.dispose()
