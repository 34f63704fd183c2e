"""`issue approve` runs the checks `issue send` runs, the scheduler's auto-approval too, and the
subject and preheader rules live in one place that the edit and the check both obey."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from newsletter import jobs, lengths
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import EditionError, approve, compose, set_overrides
from newsletter.models import Issue, IssueStatus
from newsletter.quality import GateFailed, check_message, check_view
from newsletter.render import Renderer
from newsletter.samples import dated_into_week, issue_from
from newsletter.subscriptions import add_active
from tests.commands import run
from tests.conftest import TEST_KEY

ELSEWHERE = "https://elsewhere.example.org/review"
WEEK = Week(2026, 48)


@pytest.fixture
def failing_week(settings, engine, samples):
    """This week's draft leads with a comparison whose page is on a host that is not allowed."""
    now = datetime.now(UTC)
    dated = dated_into_week(samples[:3], now, settings.zone)
    dated[0] = dated[0].model_copy(update={"url": ELSEWHERE, "pinned": True})
    with session_scope(engine) as session:
        store_comparisons(session, dated, settings.zone)
        add_active(session, ["ada@example.com"], source="test", key=TEST_KEY.encode())
        compose(session, Week.containing(now, settings.zone), settings)
    return Week.containing(now, settings.zone)


def status_of(engine) -> str:
    with session_scope(engine) as session:
        return session.exec(select(Issue)).one().status


def env(settings) -> dict[str, str]:
    return {"NEWSLETTER_SECRET_KEY": settings.secret_key}


# --- approve ------------------------------------------------------------------------------------------


def test_issue_approve_refuses_a_failing_issue_with_its_findings_until_forced(
    tmp_path, settings, engine, failing_week
):
    refused = run(tmp_path, "issue", "approve", env=env(settings))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "elsewhere.example.org" in refused.stdout and "link-hosts" in refused.stdout
    assert "fails 1 quality check; it was not approved" in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr
    assert status_of(engine) == IssueStatus.DRAFT

    forced = run(tmp_path, "issue", "approve", "--force", env=env(settings))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "approved despite 1 failing check" in forced.stderr
    assert status_of(engine) == IssueStatus.APPROVED


def test_issue_approve_passes_a_clean_issue(tmp_path, settings, engine, samples):
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples[:3], now, settings.zone), settings.zone)
        compose(session, Week.containing(now, settings.zone), settings)
    result = run(tmp_path, "issue", "approve", env=env(settings))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is approved" in result.stdout
    assert status_of(engine) == IssueStatus.APPROVED


def test_approve_never_forces_the_size_limit(settings, engine, samples):
    now = datetime.now(UTC)
    wide = settings.model_copy(update={"issue_size": 7})
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples, now, settings.zone), settings.zone)
        issue = compose(session, Week.containing(now, settings.zone), wide).issue
        with pytest.raises(GateFailed, match="--force does not override the size check") as failure:
            approve(session, issue, wide, force=True)
    assert [f.gate for f in failure.value.report.errors] == ["size"]
    assert status_of(engine) == IssueStatus.DRAFT


def test_auto_approve_at_compose_time_does_not_approve_a_failing_issue(settings, engine, samples, caplog):
    friday = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
    dated = dated_into_week(samples[:3], friday, settings.zone)
    dated[0] = dated[0].model_copy(update={"url": ELSEWHERE, "pinned": True})
    with session_scope(engine) as session:
        store_comparisons(session, dated, settings.zone)
    auto = settings.model_copy(update={"auto_approve": True})
    jobs.set_context(jobs.Context(auto, engine, threading.Event()))
    with caplog.at_level(logging.ERROR, logger="newsletter.scheduler"):
        message = jobs.compose_job(friday)
    assert "NOT approved" in message and "link-hosts" in message and "elsewhere.example.org" in message
    assert "NOT approved" in caplog.text and "elsewhere.example.org" in caplog.text
    assert status_of(engine) == IssueStatus.DRAFT


def test_auto_approve_at_send_time_does_not_approve_or_send_a_failing_draft(
    tmp_path, settings, engine, failing_week, caplog
):
    auto = settings.model_copy(update={"auto_approve": True, "send_mode": "inline"})
    jobs.set_context(jobs.Context(auto, engine, threading.Event()))
    with caplog.at_level(logging.ERROR, logger="newsletter.scheduler"):
        message = jobs.send_job(datetime.now(UTC))
    assert "NOT SENT" in message and "not approved" in message and "elsewhere.example.org" in message
    assert "elsewhere.example.org" in caplog.text
    assert status_of(engine) == IssueStatus.DRAFT
    assert not list((tmp_path / "outbox").rglob("*.eml"))


# --- subject and preheader: one rule ------------------------------------------------------------------


def test_issue_edit_refuses_a_subject_the_check_would_refuse(tmp_path, settings, engine, failing_week):
    refused = run(tmp_path, "issue", "edit", "--subject", "ab", env=env(settings))
    assert refused.returncode == 1
    assert "the subject has 2 characters; write 5 to 150" in refused.stderr
    long = run(tmp_path, "issue", "edit", "--preheader", "p" * 251, env=env(settings))
    assert long.returncode == 1
    assert "the preheader has 251 characters; write 1 to 250" in long.stderr
    with session_scope(engine) as session:
        issue = session.exec(select(Issue)).one()
        assert issue.subject_override is None and issue.preheader_override is None


@pytest.fixture(scope="module")
def rendered_message(samples_module):
    """One rendered issue's message, whose subject the subject gate can be asked about."""
    from newsletter.config import Settings
    from newsletter.preview import preview_message

    settings = Settings(_env_file=None, secret_key="k" * 40)
    view = issue_from(samples_module[:3], settings, week=WEEK)
    return preview_message(Renderer().render_issue(view), settings, view.slug), settings


@pytest.fixture(scope="module")
def samples_module():
    from newsletter.samples import sample_comparisons

    return sample_comparisons()


def _edit_accepts(session, issue, field: str, text: str) -> bool:
    try:
        set_overrides(session, issue, **{field: text})
    except EditionError:
        return False
    return True


def _bounds(low: int, high: int) -> list[int]:
    return sorted({1, 2, low - 1, low, low + 1, 77, 78, 79, high - 1, high, high + 1, high + 50} - {0})


def test_the_edit_and_the_subject_check_agree_at_every_length_around_the_bounds(
    session, settings, engine, failing_week, rendered_message
):
    message, check_settings = rendered_message
    issue = session.exec(select(Issue)).one()
    for length in _bounds(lengths.SUBJECT_MIN_CHARS, lengths.SUBJECT_MAX_CHARS):
        subject = "S" + "x" * (length - 1)
        report = check_message(dataclasses.replace(message, subject=subject), "", check_settings)
        checked = not [f for f in report.errors if f.gate == "subject"]
        assert _edit_accepts(session, issue, "subject", subject) == checked, length
        assert checked == (lengths.SUBJECT_MIN_CHARS <= length <= lengths.SUBJECT_MAX_CHARS), length


def test_the_edit_and_the_preheader_check_agree_at_every_length_around_the_bounds(
    session, settings, engine, failing_week, samples_module
):
    issue = session.exec(select(Issue)).one()
    for length in _bounds(lengths.PREHEADER_MIN_CHARS + 1, lengths.PREHEADER_MAX_CHARS):
        preheader = "p" * length
        view = issue_from(samples_module[:1], settings, week=WEEK, preheader=preheader)
        report = check_view(view, settings)
        checked = not [f for f in report.errors if f.gate == "preheader"]
        assert _edit_accepts(session, issue, "preheader", preheader) == checked, length
        assert checked == (length <= lengths.PREHEADER_MAX_CHARS), length


def test_the_rule_lives_in_one_place_moving_it_moves_both_the_edit_and_the_check(
    session, settings, engine, failing_week, rendered_message, monkeypatch
):
    """Tighten the rule in newsletter.lengths alone: the edit and the check both follow at once."""
    message, check_settings = rendered_message
    issue = session.exec(select(Issue)).one()
    monkeypatch.setattr(lengths, "SUBJECT_MIN_CHARS", 12)
    monkeypatch.setattr(lengths, "SUBJECT_MAX_CHARS", 20)
    for subject, fits in (
        ("Eleven char", False),
        ("Twelve chars", True),
        ("x" * 20, True),
        ("x" * 21, False),
    ):
        report = check_message(dataclasses.replace(message, subject=subject), "", check_settings)
        assert (not [f for f in report.errors if f.gate == "subject"]) == fits, subject
        assert _edit_accepts(session, issue, "subject", subject) == fits, subject
    monkeypatch.setattr(lengths, "PREHEADER_MAX_CHARS", 10)
    assert not _edit_accepts(session, issue, "preheader", "p" * 11)
    assert lengths.preheader_problem("p" * 11) == "the preheader has 11 characters; write 1 to 10"


def test_a_blank_edit_restores_the_generated_words_rather_than_failing(session, failing_week):
    issue = session.exec(select(Issue)).one()
    set_overrides(session, issue, subject="A fine subject", preheader="A fine preheader")
    set_overrides(session, issue, subject="   ", preheader="")
    assert issue.subject_override is None and issue.preheader_override is None
