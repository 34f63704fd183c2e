"""The quality gates: each one failed by an issue built to fail it, and a failing gate stops the send."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from newsletter import jobs
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import approve, compose
from newsletter.models import Delivery, Issue, IssueStatus
from newsletter.quality import GATES, Report, Severity, check_message, check_rendered, check_view
from newsletter.render import Renderer, templates_dir
from newsletter.samples import dated_into_week, issue_from, sample_comparisons
from newsletter.subscriptions import add_active
from tests.commands import run
from tests.conftest import TEST_KEY

WEEK = Week(2026, 48)
ELSEWHERE = "https://elsewhere.example.org/review"


@pytest.fixture(scope="module")
def items():
    return sample_comparisons()


@pytest.fixture
def templates(tmp_path):
    """A copy of the templates to break (the repository's own are never touched)."""
    return shutil.copytree(templates_dir(), tmp_path / "templates")


def edit(templates, name: str, old: str, new: str) -> None:
    path = templates / "email" / name
    text = path.read_text()
    assert old in text, f"{old!r} is not in {name}"
    path.write_text(text.replace(old, new))


def errors_of(report: Report, gate: str) -> list[str]:
    return [f"{f.message} @ {f.where}" for f in report.findings if f.gate == gate and f.severity == "error"]


def test_the_issue_as_the_templates_make_it_passes_every_gate(settings, items):
    report = check_view(issue_from(items[:3], settings, week=WEEK), settings)
    assert report.passed, report.findings
    assert report.findings == ()
    assert 50_000 < report.html_bytes < 102_000
    assert [name for name, _, _ in report.gates()] == list(GATES)


# Each case builds an issue (or a message) that fails one gate: (gate, build) where build gets the
# settings, the sample items and a copy of the templates and returns the report.
def _view(settings, items, templates, **overrides):
    return check_view(issue_from(items[:3], settings, week=WEEK, **overrides), settings, Renderer(templates))


def _oversized(settings, items, templates):
    return check_view(issue_from(items, settings, week=WEEK), settings)  # all seven comparisons


def _http_link(settings, items, templates):
    first = items[0].model_copy(update={"url": "http://verdicts.example.com/compare/x"})
    return check_view(issue_from([first, *items[1:3]], settings, week=WEEK), settings)


def _foreign_host(settings, items, templates):
    first = items[0].model_copy(update={"url": ELSEWHERE})
    return check_view(issue_from([first, *items[1:3]], settings, week=WEEK), settings)


def broken(name: str, old: str, new: str) -> Callable:
    """A case: the issue rendered by a copy of the templates where `old` became `new` in `name`."""

    def build(settings, items, templates):
        edit(templates, name, old, new)
        return _view(settings, items, templates)

    build.__name__ = f"broken_{name.split('/')[-1].split('.')[0]}"
    return build


_no_utm = broken("issue.mjml.j2", "button(comparison_url(comparison),", "button(comparison.url,")
_image = broken(
    "issue.mjml.j2", "{% if intro %}", '<img src="https://verdicts.example.com/logo.png">{% if intro %}'
)
_script = broken(
    "partials/head.mjml.j2", "<mj-raw>", '<mj-raw><script src="https://cdn.example.org/x.js"></script>'
)
_external_css = broken(
    "partials/head.mjml.j2",
    "<mj-raw>",
    '<mj-raw><link rel="stylesheet" href="https://fonts.example.org/a.css">',
)
_no_lang = broken("issue.mjml.j2", '<mjml lang="en">', "<mjml>")
_no_color_scheme = broken("partials/head.mjml.j2", '<meta name="color-scheme" content="light dark" />', "")
_preheader_not_in_html = broken("partials/preheader.mjml.j2", "{{ preheader }}</div>", "</div>")
_link_missing_from_text = broken(
    "issue.txt.j2", "Read the full comparison:\n{{ comparison_url(comparison) }}", ""
)


def _no_preheader(settings, items, templates):
    return _view(settings, items, templates, preheader="")


def _no_text_part(settings, items, templates):
    (templates / "email" / "issue.txt.j2").write_text("")
    return _view(settings, items, templates)


def _no_list_headers(settings, items, templates):
    rendered = Renderer().render_issue(issue_from(items[:3], settings, week=WEEK))
    message = check_rendered(rendered, settings, "2026-w48").message
    return check_message(dataclasses.replace(message, unsubscribe_url=None), rendered.preheader, settings)


def _empty_subject(settings, items, templates):
    return _view(settings, items, templates, subject="Hi")


def _long_subject(settings, items, templates):
    return _view(settings, items, templates, subject="Verdicts " * 20)


FAILING: list[tuple[str, Callable, str]] = [
    ("size", _oversized, "Gmail clips"),
    ("links-https", _http_link, "not an absolute https URL"),
    ("link-hosts", _foreign_host, "elsewhere.example.org is neither the site"),
    ("utm", _no_utm, "lacks utm_source, utm_medium, utm_campaign"),
    ("images", _image, "an image without alt text"),
    ("images", _image, "without a numeric width"),
    ("no-external", _script, "a script"),
    ("no-external", _external_css, "an external stylesheet"),
    ("lang", _no_lang, "has no language"),
    ("color-scheme", _no_color_scheme, 'no <meta name="color-scheme">'),
    ("preheader", _no_preheader, "no preheader"),
    ("preheader", _preheader_not_in_html, "not in a hidden element"),
    ("text-part", _link_missing_from_text, "is in the HTML but not in the text part"),
    ("text-part", _no_text_part, "no plain-text part"),
    ("list-unsubscribe", _no_list_headers, "no List-Unsubscribe header"),
    ("list-unsubscribe", _no_list_headers, "List-Unsubscribe-Post"),
    ("subject", _empty_subject, "the subject has 2 characters"),
    ("subject", _long_subject, "the subject has 179 characters"),
]


@pytest.mark.parametrize(
    ("gate", "build", "expected"), FAILING, ids=[f"{g}-{b.__name__}" for g, b, _ in FAILING]
)
def test_each_gate_fails_an_issue_built_to_fail_it(settings, items, templates, gate, build, expected):
    report = build(settings, items, templates)
    assert not report.passed
    found = errors_of(report, gate)
    assert any(expected in finding for finding in found), (gate, report.findings)


def test_every_gate_has_a_case_that_fails_it():
    assert {gate for gate, _, _ in FAILING} == set(GATES)


def test_findings_say_where(settings, items, templates):
    report = _foreign_host(settings, items, [])
    (first, *_) = errors_of(report, "link-hosts")
    assert "HTML line" in first and "<a>" in first and "“Read the full comparison”" in first
    report = _image(settings, items, templates)
    assert any("<img> https://verdicts.example.com/logo.png" in f for f in errors_of(report, "images"))


def test_allowed_hosts_let_their_links_through_with_utm(settings, items):
    allowed = settings.model_copy(update={"allowed_link_hosts": "elsewhere.example.org"})
    first = items[0].model_copy(update={"url": ELSEWHERE})
    report = check_view(issue_from([first, *items[1:3]], allowed, week=WEEK), allowed)
    assert report.passed, report.findings
    assert any(url.startswith(f"{ELSEWHERE}?utm_source=") for url in _destinations(report))


def test_personal_action_links_need_no_utm_but_content_links_do(settings, items):
    report = check_view(issue_from(items[:1], settings, week=WEEK), settings)
    html = report.message.html
    assert "/unsubscribe/" in html and "/vote/" in html
    assert not any("utm_" in url for url in _hrefs(html) if "/unsubscribe/" in url or "/vote/" in url)
    content = [url for url in _destinations(report) if "/compare/" in url or "/issues/" in url]
    assert content and all("utm_campaign=2026-w48" in url for url in content)


def _hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', html)


def _destinations(report: Report) -> list[str]:
    """Where the message's tracked links lead (the HTML holds only /r/ links to the site)."""
    tracked = report.message.content.rendered.tracked_links
    html = report.message.html
    assert tracked and all(f"/r/0.{code}." in html for code in tracked if tracked[code].kind != "open")
    return [spec.url for spec in tracked.values()]


def test_warnings_do_not_fail_the_check(settings, items, templates):
    report = _view(settings, items, templates, subject="A subject that goes on and on " * 3)
    assert report.passed
    assert [f.severity for f in report.findings] == [Severity.WARNING]


# --- the send is refused -------------------------------------------------------------------------------


@pytest.fixture
def failing_week(settings, engine, items):
    """This week's store holds a pinned comparison whose page lives on a host that is not allowed,
    composed into the week's draft, with two readers."""
    now = datetime.now(UTC)
    week = Week.containing(now, settings.zone)
    dated = dated_into_week(items[:3], now, settings.zone)
    dated[0] = dated[0].model_copy(update={"url": ELSEWHERE, "pinned": True})
    with session_scope(engine) as session:
        store_comparisons(session, dated, settings.zone)
        add_active(session, ["ada@example.com", "grace@example.com"], source="test", key=TEST_KEY.encode())
        assert compose(session, week, settings).issue is not None
    return week


def test_issue_check_lists_the_findings_and_exits_1(tmp_path, settings, failing_week):
    result = run(tmp_path, "issue", "check", env={"NEWSLETTER_SECRET_KEY": settings.secret_key})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "link-hosts" in result.stdout and "elsewhere.example.org" in result.stdout
    assert "failed: link-hosts" in result.stdout

    allowed = run(
        tmp_path,
        "issue",
        "check",
        env={
            "NEWSLETTER_SECRET_KEY": settings.secret_key,
            "NEWSLETTER_ALLOWED_LINK_HOSTS": "elsewhere.example.org",
        },
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "12 checks: all pass" in allowed.stdout


def test_a_failing_gate_refuses_the_send_until_forced(tmp_path, settings, engine, failing_week):
    env = {"NEWSLETTER_SECRET_KEY": settings.secret_key}
    refused = run(tmp_path, "issue", "send", env=env)
    assert refused.returncode == 1
    assert "fails 1 quality check" in refused.stderr and "--force" in refused.stderr
    assert "elsewhere.example.org" in refused.stdout  # the findings, with where they are
    assert not list((tmp_path / "outbox").glob("*/*.eml"))
    with session_scope(engine) as session:
        assert session.exec(select(Issue)).one().status == IssueStatus.DRAFT
        assert session.exec(select(Delivery)).all() == []

    forced = run(tmp_path, "issue", "send", "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "sending despite 1 failing check" in forced.stderr
    assert len(list((tmp_path / "outbox").glob("*/*.eml"))) == 2


def test_the_scheduler_does_not_send_an_approved_issue_that_fails_a_gate(
    tmp_path, settings, engine, failing_week, caplog
):
    jobs.set_context(jobs.Context(settings, engine, threading.Event()))
    with session_scope(engine) as session:  # approving a failing issue takes --force
        approve(session, session.exec(select(Issue)).one(), settings, force=True)
    with caplog.at_level(logging.ERROR, logger="newsletter.scheduler"):
        message = jobs.send_job(datetime.now(UTC))
    assert "NOT SENT" in message and "link-hosts" in message and "elsewhere.example.org" in message
    assert "NOT SENT" in caplog.text
    assert not list((tmp_path / "outbox").glob("*/*.eml"))
    with session_scope(engine) as session:
        assert session.exec(select(Issue)).one().status == IssueStatus.APPROVED

    jobs.set_context(
        jobs.Context(
            settings.model_copy(
                update={"allowed_link_hosts": "elsewhere.example.org", "send_mode": "inline"}
            ),
            engine,
            threading.Event(),
        )
    )
    assert "2 sent" in jobs.send_job(datetime.now(UTC))
