"""The issue, the confirmation, the welcome and the re-engagement email as SpamAssassin scores them,
offline (`spamassassin -t -L`: without -L, failed network look-ups add points that say nothing about
the message)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, date, datetime

import pytest

from newsletter.config import Settings
from newsletter.curation import Week
from newsletter.letters import LatestIssue, Letters, WelcomeFor
from newsletter.mail import to_eml
from newsletter.notices import NoticeKind, Notices
from newsletter.preview import preview_message
from newsletter.render import Renderer
from newsletter.samples import issue_from, sample_comparisons
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.sqlite_pass_only  # the page's or email's HTML, the same on any store

MAX_SCORE = 0.1
_SCORE = re.compile(r"^Content analysis details:\s+\((-?\d+(?:\.\d+)?) points", re.MULTILINE)
_RULE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", re.MULTILINE)


def spam_report(message: bytes) -> tuple[float, list[str]]:
    """SpamAssassin's score for `message` and the rules that added points."""
    program = shutil.which("spamassassin")
    if program is None:
        pytest.fail("spamassassin is not installed; install it with: apt-get install -y spamassassin")
    run = subprocess.run([program, "-t", "-L"], input=message, capture_output=True, timeout=120, check=False)
    report = run.stdout.decode("utf-8", "replace")
    score = _SCORE.search(report)
    assert score, f"no score in SpamAssassin's report:\n{report[-2000:]}\n{run.stderr.decode()[-2000:]}"
    rules = [f"{name} {points}" for points, name in _RULE.findall(report) if float(points) > 0]
    return float(score[1]), rules


@pytest.fixture(scope="module")
def settings():
    return Settings(_env_file=None, secret_key=TEST_KEY)


@pytest.mark.parametrize("scorecard", ["full", "excerpt"])
def test_the_issue_scores_at_most_a_tenth(settings, scorecard):
    configured = settings.model_copy(update={"scorecard": scorecard})
    issue = issue_from(sample_comparisons()[:3], configured, week=Week(2026, 48))
    message = preview_message(Renderer().render_issue(issue), configured, issue.slug)
    score, rules = spam_report(to_eml(message, datetime.now(UTC)))
    assert score <= MAX_SCORE, rules


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_the_confirmation_and_other_notices_score_at_most_a_tenth(settings, kind):
    message = Notices(settings).message(kind, subscriber_id=1, email="reader@example.com")
    score, rules = spam_report(to_eml(message, datetime.now(UTC)))
    assert score <= MAX_SCORE, rules


@pytest.mark.parametrize(
    "latest", [None, LatestIssue("2026-w48", "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite")]
)
def test_the_welcome_scores_at_most_a_tenth(settings, latest):
    reader = WelcomeFor(1, "reader@example.com", frozenset({"Developer Tools"}), datetime.now(UTC))
    message = Letters(settings).welcome(reader, latest)
    score, rules = spam_report(to_eml(message, datetime.now(UTC)))
    assert score <= MAX_SCORE, rules


def test_the_re_engagement_question_scores_at_most_a_tenth(settings):
    question = Letters(settings).still_want(4, date(2026, 12, 21))
    message = question.message(ask_id=1, subscriber_id=1, email="reader@example.com")
    score, rules = spam_report(to_eml(message, datetime.now(UTC)))
    assert score <= MAX_SCORE, rules
