"""The console counts its costliest figures ahead: the recent settled issues' rollups and the list's
past weeks, once, then only what a change dropped; started and stopped with the app."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from newsletter.console import warmer as warmer_module
from newsletter.console.app import create_console
from newsletter.console.warmer import FigureWarmer
from newsletter.db import session_scope
from newsletter.models import IssueRollup, ListSize, Subscriber
from newsletter.subscriptions import erase
from tests.test_reports import busy  # noqa: F401  (a fixture)
from tests.test_rollups import PARTS, counted, kept, read


def weeks_kept(engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(ListSize)).all())


def test_a_look_counts_what_is_not_kept_and_then_nothing(engine, settings, busy):  # noqa: F811
    issue_id, readers = busy
    assert kept(engine, issue_id) == set()
    warmer = FigureWarmer(engine, settings)
    assert warmer.warm_once() == [issue_id]
    assert kept(engine, issue_id) == PARTS
    assert weeks_kept(engine) > 0
    assert warmer.warm_once() == [], "everything is kept: nothing is counted again"
    warmed = read(engine, issue_id)
    assert warmed == counted(engine, issue_id)
    read(engine, issue_id)
    with session_scope(engine) as session:  # an erasure drops the issue's hits and the past weeks
        erase(session, session.get(Subscriber, readers[1]))
    assert kept(engine, issue_id) != PARTS
    assert warmer.warm_once() == [issue_id]
    assert kept(engine, issue_id) == PARTS and weeks_kept(engine) > 0


def test_the_console_app_warms_on_its_own_thread_while_it_runs(engine, settings, busy, monkeypatch):  # noqa: F811
    issue_id, _ = busy
    monkeypatch.setattr(warmer_module, "FIRST_LOOK", 0.05)
    app = create_console(settings, engine, hosts=("testserver",), warm_every=0.1)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        deadline = time.monotonic() + 30
        while kept(engine, issue_id) != PARTS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kept(engine, issue_id) == PARTS
    with session_scope(engine) as session:  # stopped with the app: nothing counts any more
        session.execute(IssueRollup.__table__.delete())
    time.sleep(0.3)
    assert kept(engine, issue_id) == set()


def test_no_look_without_a_store_or_when_turned_off(engine, settings):
    FigureWarmer(None, settings).start()  # nothing to warm: no thread, no error
    off = FigureWarmer(engine, settings, every=0)
    off.start()
    assert off._thread is None
