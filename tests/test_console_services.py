"""What the console changes goes through `editions` (reorder, drop, add while a draft; unapprove),
every change can be an editor event in its own transaction, a send's progress is read from the
ledger alone, and editor passwords and sessions hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from newsletter import editor_log, ledger
from newsletter.config import ConfigError, Settings
from newsletter.console.access import Credentials, Editor, Sessions, check_binding, is_loopback_host
from newsletter.content import store_comparisons
from newsletter.curation import Week
from newsletter.db import session_scope
from newsletter.editions import (
    EditionError,
    add_item,
    addable,
    approve,
    compose,
    drop_item,
    issue_comparisons,
    move_item,
    unapprove,
)
from newsletter.models import Delivery, DeliveryStatus, EditorEvent, Issue, IssueItem, IssueStatus, utcnow
from newsletter.passwords import hash_password, parse_hash, verify_password
from newsletter.samples import dated_into_week
from newsletter.send_progress import send_progress
from newsletter.subscriptions import add_active
from tests.conftest import TEST_KEY

FAST = (2**4, 8, 1)  # scrypt costs for tests: the format and the check, not the hardness


@pytest.fixture
def week(settings, engine, samples) -> Week:
    """A draft of three (issue size 3) out of the five comparisons published this week."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        store_comparisons(session, dated_into_week(samples[:5], now, settings.zone), settings.zone)
        add_active(session, [f"r{n}@example.com" for n in range(4)], source="test", key=TEST_KEY.encode())
        compose(session, Week.containing(now, settings.zone), settings)
    return Week.containing(now, settings.zone)


def picked(engine) -> tuple[Issue, list[str]]:
    with session_scope(engine) as session:
        issue = session.exec(select(Issue)).one()
        return issue, [c.slug for c in issue_comparisons(session, issue)]


def test_a_draft_is_reordered_shortened_and_extended_in_place(engine, settings, week):
    issue, before = picked(engine)
    assert len(before) == settings.issue_size == 3
    with session_scope(engine) as session:
        issue = session.get(Issue, issue.id)
        ids = {c.slug: c.id for c in issue_comparisons(session, issue)}
        move_item(session, issue, ids[before[0]], 1)
    assert picked(engine)[1] == [before[1], before[0], before[2]]
    with session_scope(engine) as session:
        move_item(session, session.get(Issue, issue.id), ids[before[2]], -5)  # clamped to the top
    assert picked(engine)[1] == [before[2], before[1], before[0]]

    with session_scope(engine) as session:
        issue = session.get(Issue, issue.id)
        spare = addable(session, issue, settings)
        assert len(spare) == 2 and not {c.slug for c in spare} & set(before)
        with pytest.raises(EditionError, match="NEWSLETTER_ISSUE_SIZE"):
            add_item(session, issue, spare[0].id, settings)  # full at three
        drop_item(session, issue, ids[before[1]])
        added = add_item(session, issue, spare[0].id, settings)
    assert picked(engine)[1] == [before[2], before[0], added.slug]
    with session_scope(engine) as session:
        issue = session.get(Issue, issue.id)
        drop_item(session, issue, ids[before[0]])
        with pytest.raises(EditionError, match="cannot go into"):
            add_item(session, issue, ids[before[2]], settings)  # carried already
        positions = [
            i.position for i in session.exec(select(IssueItem).where(IssueItem.issue_id == issue.id))
        ]
    assert sorted(positions) == [0, 1], "positions stay a plain sequence"


def test_the_pick_of_an_approved_issue_is_fixed_until_it_is_unapproved(engine, settings, week):
    issue, before = picked(engine)
    with session_scope(engine) as session:
        approve(session, session.get(Issue, issue.id), settings)
    with session_scope(engine) as session:
        issue = session.get(Issue, issue.id)
        first = issue_comparisons(session, issue)[0]
        for change in (
            lambda: move_item(session, issue, first.id, 1),
            lambda: drop_item(session, issue, first.id),
        ):
            with pytest.raises(EditionError, match="only a draft's comparisons"):
                change()
    assert picked(engine)[1] == before
    with session_scope(engine) as session:
        unapprove(session, session.get(Issue, issue.id))
    issue, _ = picked(engine)
    assert issue.status == IssueStatus.DRAFT and issue.approved_at is None
    with session_scope(engine) as session, pytest.raises(EditionError, match="only an approved issue"):
        unapprove(session, session.get(Issue, issue.id))


def test_unapprove_never_turns_a_send_back_into_a_draft(engine, settings, week):
    issue, _ = picked(engine)
    with session_scope(engine) as session:
        approve(session, session.get(Issue, issue.id), settings)
    with session_scope(engine) as session:
        stale = session.get(Issue, issue.id)  # an editor's page read it as approved ...
    with session_scope(engine) as session:  # ... then a sender opened it
        ledger.open_send(session, issue.id)
    assert stale.status == IssueStatus.APPROVED
    with session_scope(engine) as session, pytest.raises(EditionError, match="is sending"):
        unapprove(session, session.merge(stale, load=False))
    assert picked(engine)[0].status == IssueStatus.SENDING


def test_the_last_comparison_cannot_be_dropped(engine, week):
    issue, before = picked(engine)
    with session_scope(engine) as session:
        issue = session.get(Issue, issue.id)
        ids = [c.id for c in issue_comparisons(session, issue)]
        drop_item(session, issue, ids[0])
        drop_item(session, issue, ids[1])
        with pytest.raises(EditionError, match="at least one"):
            drop_item(session, issue, ids[2])


def test_an_editor_event_commits_or_rolls_back_with_its_change(engine, week):
    issue, before = picked(engine)
    with session_scope(engine) as session:
        editor_log.record(session, "ada", "reorder", issue_id=issue.id, detail="x" * 5000)

    def refused_change() -> None:
        with session_scope(engine) as session:
            editor_log.record(session, "ada", "drop", issue_id=issue.id)
            drop_item(session, session.get(Issue, issue.id), 10**6)  # refused: the event goes too

    with pytest.raises(EditionError):
        refused_change()
    with session_scope(engine) as session:
        events = editor_log.issue_history(session, issue.id)
    assert [(e.editor, e.action) for e in events] == [("ada", "reorder")]
    assert len(events[0].detail) == editor_log.MAX_DETAIL and events[0].at.tzinfo is not None


def test_progress_is_read_from_the_ledger_with_a_rate_over_the_last_minute(engine, week):
    issue, _ = picked(engine)
    with session_scope(engine) as session:
        ledger.open_send(session, issue.id)
    now = utcnow()
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery).order_by(Delivery.id)).all()
        assert len(rows) == 4
        for row, (status, ago, error) in zip(
            rows,
            [
                (DeliveryStatus.SENT, 30, None),
                (DeliveryStatus.SENT, 10, None),
                (DeliveryStatus.FAILED, None, "provider said no"),
                (DeliveryStatus.QUEUED, None, None),
            ],
            strict=True,
        ):
            sent_at = now - timedelta(seconds=ago) if ago else None
            session.execute(
                update(Delivery)
                .where(Delivery.id == row.id)
                .values(status=status, sent_at=sent_at, last_error=error)
            )
    with session_scope(engine) as session:
        progress = send_progress(session, issue.id, now)
    assert (progress.total, progress.sent, progress.failed, progress.queued) == (4, 2, 1, 1)
    assert progress.percent == 75.0 and progress.owed == 1
    assert progress.failed_reasons == [("provider said no", 1)]
    assert progress.rate == pytest.approx(2 / 30, abs=0.05)  # two messages since the first, 30 s ago
    assert progress.seconds_left == pytest.approx(1 / (2 / 30), rel=0.05)
    with session_scope(engine) as session:
        later = send_progress(session, issue.id, now + timedelta(minutes=5))
    assert later.rate == 0 and later.seconds_left is None  # nothing sent in the last minute: unknown


def test_passwords_hash_verify_and_refuse_malformed_hashes():
    encoded = hash_password("correct horse", cost=FAST)
    assert encoded.startswith("scrypt:16:8:1:") and "$" not in encoded
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct hors", encoded) and not verify_password("", encoded)
    assert hash_password("correct horse", cost=FAST) != encoded, "a fresh salt every time"
    for bad in ("", "scrypt:16:8:1:abc", "bcrypt:1:1:1:a:b", "scrypt:15:8:1:YWJjZGVmZ2g:" + "A" * 43):
        with pytest.raises(ValueError, match=r"password hash|cost|salt|scrypt costs"):
            parse_hash(bad)
    with pytest.raises(Exception, match=r"password hash"):
        Settings(_env_file=None, editor_password_hash="scrypt:nope")


def credentials(**values) -> Credentials:
    return Credentials(Settings(_env_file=None, secret_key=TEST_KEY, editor_name="ada", **values))


def test_a_login_needs_the_name_and_the_password_or_the_token():
    token = "t" * 20 + "0123456789abcdefghij"
    creds = credentials(editor_password_hash=hash_password("pw", cost=FAST), editor_token=token)
    assert creds.required
    assert creds.login("ada", "pw") == Editor("ada", "password")
    assert creds.login(" ada ", token) == Editor("ada", "token")
    assert creds.login("bob", "pw") is None and creds.login("ada", "wrong") is None
    assert creds.bearer(f"Bearer {token}") == Editor("ada", "token")
    assert creds.bearer("Bearer nope") is None and creds.bearer(None) is None
    assert not credentials().required


def test_sessions_are_signed_expire_end_on_logout_and_on_a_new_password():
    creds = credentials(editor_password_hash=hash_password("pw", cost=FAST))
    sessions = Sessions(TEST_KEY.encode(), creds, hours=1)
    cookie = sessions.make(Editor("ada", "password"), now=1000)
    assert sessions.read(cookie, now=1001) == Editor("ada", "session")
    assert sessions.read(cookie, now=1000 + 3601) is None, "expired"
    name, expires, nonce, mac = cookie.split(".")
    forged = ".".join((name, str(int(expires) + 86400), nonce, mac))
    assert sessions.read(forged, now=1001) is None, "a longer life is not for the taking"
    other_name = ".".join(("Ym9i", expires, nonce, mac))  # "bob"
    assert sessions.read(other_name, now=1001) is None
    assert sessions.read("garbage", now=1001) is None and sessions.read(None) is None
    changed = Sessions(
        TEST_KEY.encode(), credentials(editor_password_hash=hash_password("new", cost=FAST)), 1
    )
    assert changed.read(cookie, now=1001) is None, "a new password ends every session"
    sessions.revoke(cookie, now=1001)
    assert sessions.read(cookie, now=1002) is None, "logged out"


def test_the_console_binds_beyond_loopback_only_with_credentials():
    assert is_loopback_host("127.0.0.1") and is_loopback_host("127.0.0.2") and is_loopback_host("::1")
    assert is_loopback_host("localhost") and not is_loopback_host("0.0.0.0")  # noqa: S104
    bare = Settings(_env_file=None, secret_key=TEST_KEY)
    check_binding(bare, "127.0.0.1")
    for host in ("0.0.0.0", "192.0.2.10", "::"):  # noqa: S104
        with pytest.raises(ConfigError, match="without a login"):
            check_binding(bare, host)
    check_binding(Settings(_env_file=None, secret_key=TEST_KEY, editor_token="x" * 40), "0.0.0.0")  # noqa: S104


def test_editor_events_table_holds_who_when_what(engine, week):
    issue, _ = picked(engine)
    with session_scope(engine) as session:
        editor_log.record(session, "ada", "approve", issue_id=issue.id)
        editor_log.record(session, "bob", "pin", comparison_id=1, detail="lovable-vs-bolt-new")
    with session_scope(engine) as session:
        rows = session.exec(select(EditorEvent).order_by(EditorEvent.id)).all()
        recent = editor_log.recent(session)
    assert [(r.editor, r.action, r.issue_id, r.comparison_id) for r in rows] == [
        ("ada", "approve", issue.id, None),
        ("bob", "pin", None, 1),
    ]
    assert [r.action for r in recent] == ["pin", "approve"]
