"""Imports from other platforms: each platform's own export (files in tests/fixtures/exports/, shaped
like the real ones: headers, statuses, quoting, line ends, time formats) becomes readers here without
losing anyone's consent. On SQLite and PostgreSQL (the `session` fixture follows the suite's store)."""

from __future__ import annotations

import shutil
import zipfile
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select

from newsletter.export_files import FileRefused
from newsletter.models import Subscriber, SubscriberEvent, SubscriberStatus, utcnow
from newsletter.subscriber_files import import_file
from newsletter.subscriptions import Outcome, add_active, confirm, request_signup
from tests.conftest import FIXTURES, TEST_KEY

KEY = TEST_KEY.encode()
EXPORTS = FIXTURES / "exports"
ACTIVE, PENDING, SUPPRESSED = "active", "pending", "suppressed"

# Per fixture: the format `auto` must recognise, and every address's state and reason after the import.
EXPECTED = {
    "substack/email_list.verdicts.csv": (
        "substack",
        {
            "free.reader@example.com": (ACTIVE, None),
            "paid.reader@example.com": (ACTIVE, None),
            "founding.reader@example.com": (ACTIVE, None),
            "monthly.off@example.com": (SUPPRESSED, "imported: substack email_disabled"),
            "emails.off@example.com": (SUPPRESSED, "imported: substack email_disabled"),
            # The same reader twice: the row that turned emails off wins over the one that did not.
            "mixed.case@example.com": (SUPPRESSED, "imported: substack email_disabled"),
        },
    ),
    "substack/signup_emails.csv": (
        "substack",
        {
            "early.reader@example.com": (ACTIVE, None),
            "early.off@example.com": (SUPPRESSED, "imported: substack email_disabled"),
        },
    ),
    "mailchimp/subscribed_members_export_6c7d8e9f0a.csv": (
        "mailchimp",
        {f"s{n}@example.com": (ACTIVE, None) for n in (1, 2, 3)},
    ),
    "mailchimp/unsubscribed_members_export_6c7d8e9f0a.csv": (
        "mailchimp",
        {f"u{n}@example.com": (SUPPRESSED, "imported: mailchimp unsubscribed") for n in (1, 2)},
    ),
    "mailchimp/cleaned_members_export_6c7d8e9f0a.csv": (
        "mailchimp",
        {f"c{n}@example.com": (SUPPRESSED, "imported: mailchimp cleaned") for n in (1, 2)},
    ),
    "beehiiv/subscribers.csv": (
        "beehiiv",
        {
            "active@example.com": (ACTIVE, None),
            "premium@example.com": (ACTIVE, None),
            "left.later@example.com": (SUPPRESSED, "imported: beehiiv unsubscribed"),
            "inactive@example.com": (SUPPRESSED, "imported: beehiiv inactive"),
            "pending@example.com": (PENDING, None),
            "validating@example.com": (PENDING, None),
            "invalid@example.com": (SUPPRESSED, "imported: beehiiv invalid"),
            "attention@example.com": (PENDING, None),
        },
    ),
    "ghost/members.2026-12-03.csv": (
        "ghost",
        {
            "member@example.com": (ACTIVE, None),
            "paid@example.com": (ACTIVE, None),
            "no-emails@example.com": (SUPPRESSED, "imported: ghost subscribed_to_emails=false"),
            "comped@example.com": (ACTIVE, None),
            "deleted@example.com": (SUPPRESSED, "imported: ghost deleted"),
        },
    ),
    "listmonk/subscribers.csv": (
        "listmonk",
        {
            "enabled@example.com": (ACTIVE, None),
            "india@example.com": (ACTIVE, None),
            "disabled@example.com": (SUPPRESSED, "imported: listmonk disabled"),
            "blocked@example.com": (SUPPRESSED, "imported: listmonk blocklisted"),
        },
    ),
    "buttondown/subscribers.csv": (
        "buttondown",
        {
            **{
                f"{kind}@example.com": (ACTIVE, None)
                for kind in (
                    "regular",
                    "premium",
                    "gifted",
                    "trialed",
                    "churning",
                    "churned",
                    "past_due",
                    "paused",
                    "unpaid",
                    "upcoming",
                )
            },
            "unactivated@example.com": (PENDING, None),
            **{
                f"{kind}@example.com": (SUPPRESSED, f"imported: buttondown {kind}")
                for kind in ("unsubscribed", "removed", "complained", "undeliverable", "blocked")
            },
        },
    ),
    "kit/subscribers.csv": (
        "kit",
        {
            "maja@example.com": (ACTIVE, None),
            "nils@example.com": (PENDING, None),
            "cancelled@example.com": (SUPPRESSED, "imported: kit cancelled"),
            "bounced@example.com": (SUPPRESSED, "imported: kit bounced"),
            "complained@example.com": (SUPPRESSED, "imported: kit complained"),
        },
    ),
}


def states(session: Session) -> dict[str, tuple[str, str | None]]:
    session.expire_all()
    return {s.email: (s.status, s.status_reason) for s in session.exec(select(Subscriber))}


def reader(session: Session, address: str) -> Subscriber:
    session.expire_all()
    return session.exec(select(Subscriber).where(Subscriber.email == address)).one()


def run_import(session: Session, path, **options) -> object:
    options = {"key": KEY, "confirm": False, "skip_invalid": False} | options
    report = import_file(session, path, **options)
    session.commit()
    return report


@pytest.mark.parametrize("fixture", list(EXPECTED))
def test_each_platforms_export_is_recognised_and_every_status_lands_where_consent_says(session, fixture):
    platform, expected = EXPECTED[fixture]
    report = run_import(session, EXPORTS / fixture)
    assert [part.format.name for part in report.parts] == [platform]
    assert states(session) == expected
    # Every imported reader has an event naming the platform it came from.
    events = session.exec(select(SubscriberEvent.subscriber_id, SubscriberEvent.source)).all()
    assert {source for _, source in events} == {f"import:{platform}"}
    assert len({sid for sid, _ in events}) == len(expected)
    # Nobody the export says left is active, and a rerun changes nothing.
    again = run_import(session, EXPORTS / fixture)
    assert states(session) == expected
    assert again.added == [] and again.activated == 0 and again.suppressed == 0


def test_the_substack_reader_who_turned_emails_off_is_suppressed_not_active(session):
    """The defect from the issue: `email_disabled=true` was imported as active."""
    report = run_import(session, EXPORTS / "substack/email_list.verdicts.csv")
    off = reader(session, "emails.off@example.com")
    assert off.status == SubscriberStatus.SUPPRESSED and off.confirmed_at is None
    assert off.status_reason == "imported: substack email_disabled"
    assert report.outcomes[("add as suppressed", "email_disabled")] == 3
    assert report.outcomes[("skip: nothing to store", "deletion request")] == 1
    # The original signup time is kept.
    assert reader(session, "free.reader@example.com").created_at == datetime(
        2021, 3, 4, 17, 10, 32, 118000, UTC
    )


def test_mailchimps_three_files_in_their_zip_import_in_one_run_with_their_times(session, tmp_path):
    archive = tmp_path / "audience_export_6c7d8e9f0a.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for member in sorted((EXPORTS / "mailchimp").glob("*.csv")):
            zipped.write(member, member.name)
        zipped.writestr("readme.txt", "not a list")
    report = run_import(session, archive)
    assert sorted(part.detail for part in report.parts) == [
        "cleaned members",
        "subscribed members",
        "unsubscribed members",
    ]
    expected = {}
    for name in ("subscribed", "unsubscribed", "cleaned"):
        expected |= EXPECTED[f"mailchimp/{name}_members_export_6c7d8e9f0a.csv"][1]
    assert states(session) == expected
    s1 = reader(session, "s1@example.com")
    assert s1.created_at == datetime(2023, 4, 21, 11, 16, 57, tzinfo=UTC)  # OPTIN_TIME
    assert s1.confirmed_at == datetime(2023, 4, 21, 11, 17, 40, tzinfo=UTC)  # CONFIRM_TIME
    assert reader(session, "u1@example.com").unsubscribed_at == datetime(2018, 7, 23, 12, 19, 27, tzinfo=UTC)
    assert reader(session, "c1@example.com").unsubscribed_at == datetime(2020, 3, 23, 17, 30, 5, tzinfo=UTC)


def test_listmonk_times_in_gos_format_keep_their_offset(session):
    run_import(session, EXPORTS / "listmonk/subscribers.csv")
    india = reader(session, "india@example.com")
    assert india.created_at == datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)


def test_a_byte_order_mark_changes_nothing(session, tmp_path):
    marked = tmp_path / "members.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + (EXPORTS / "ghost/members.2026-12-03.csv").read_bytes())
    run_import(session, marked)
    assert states(session) == EXPECTED["ghost/members.2026-12-03.csv"][1]


# --- consent: a suppressed reader stays out of every owner's path --------------------------------


def test_a_reader_suppressed_by_import_comes_back_only_by_confirming_themselves(session, tmp_path):
    address = "c1@example.com"
    run_import(session, EXPORTS / "mailchimp/cleaned_members_export_6c7d8e9f0a.csv")
    assert reader(session, address).status == SUPPRESSED

    assert add_active(session, [address], source="test", key=KEY).not_reactivated == [address]
    session.commit()
    plain = tmp_path / "list.csv"
    plain.write_text(f"email\n{address}\n")
    for confirm_mode in (False, True):
        report = run_import(session, plain, confirm=confirm_mode)
        assert report.added == [] and report.activated == 0 and report.to_confirm == []
    # The subscribed file of another audience that still lists them.
    other = tmp_path / "subscribed_members_export_ffff.csv"
    source = (EXPORTS / "mailchimp/subscribed_members_export_6c7d8e9f0a.csv").read_text()
    other.write_text(source.replace("s1@example.com", address))
    assert run_import(session, other).outcomes[("skip: left earlier", "suppressed")] == 1
    # Someone types the address into the signup form: they stay suppressed, a request is noted.
    result = request_signup(session, address, source="form", client="203.0.113.7", per_address=(50, 3600))
    session.commit()
    row = reader(session, address)
    assert row.status == SUPPRESSED and row.requested_at is not None
    # A link from before that request is stale; the one it sent brings them back.
    before = row.requested_at.replace(microsecond=0)
    assert (
        confirm(session, result.subscriber_id, before.replace(year=2020), client=None, key=KEY)
        == Outcome.STALE
    )
    assert confirm(session, result.subscriber_id, before, client=None, key=KEY) == Outcome.DONE
    session.commit()
    back = reader(session, address)
    assert back.status == ACTIVE and back.status_reason is None


def test_an_import_never_overwrites_a_stricter_state_here(session):
    for address, status in (("u1@example.com", "bounced"), ("s1@example.com", "unsubscribed")):
        session.add(Subscriber(email=address, status=status, source="test"))
    session.commit()
    run_import(session, EXPORTS / "mailchimp/unsubscribed_members_export_6c7d8e9f0a.csv")
    run_import(session, EXPORTS / "mailchimp/subscribed_members_export_6c7d8e9f0a.csv")
    found = states(session)
    assert found["u1@example.com"] == ("bounced", None), "not downgraded to the export's unsubscribed"
    assert found["s1@example.com"] == ("unsubscribed", None), "not reactivated by the subscribed file"


def test_an_export_that_says_they_left_suppresses_a_reader_here_unless_they_confirmed_later(session):
    now = utcnow()
    vouched = Subscriber(email="u1@example.com", status=ACTIVE, source="test", confirmed_at=now)
    own = Subscriber(email="u2@example.com", status=ACTIVE, source="test", confirmed_at=now)
    waiting = Subscriber(email="c1@example.com", status=PENDING, source="form", requested_at=now)
    session.add_all([vouched, own, waiting])
    session.flush()
    # u2 confirmed here by their own link after Mailchimp's UNSUB_TIME (2023-06-06).
    session.add(SubscriberEvent(subscriber_id=own.id, kind="confirmed", source="confirmation link", at=now))
    session.commit()
    run_import(session, EXPORTS / "mailchimp/unsubscribed_members_export_6c7d8e9f0a.csv")
    report = run_import(session, EXPORTS / "mailchimp/cleaned_members_export_6c7d8e9f0a.csv")
    found = states(session)
    assert found["u1@example.com"] == (SUPPRESSED, "imported: mailchimp unsubscribed")
    assert found["u2@example.com"] == (ACTIVE, None)
    assert found["c1@example.com"] == (SUPPRESSED, "imported: mailchimp cleaned")
    assert report.outcomes[("suppress reader already here", "cleaned; was pending")] == 1
    kinds = session.exec(select(SubscriberEvent.detail).where(SubscriberEvent.kind == "suppressed")).all()
    assert "imported: mailchimp unsubscribed; was active" in kinds


def test_pending_stays_pending_and_is_made_active_only_by_a_subscribed_row(session, tmp_path):
    for address in ("pending@example.com", "active@example.com"):
        session.add(Subscriber(email=address, status=PENDING, source="form", requested_at=utcnow()))
    session.commit()
    run_import(session, EXPORTS / "beehiiv/subscribers.csv")
    found = states(session)
    assert found["pending@example.com"] == (PENDING, None), "the export says they never confirmed"
    assert found["active@example.com"] == (ACTIVE, None), "the export says they are subscribed"
    assert found["validating@example.com"] == (PENDING, None)


def test_with_confirm_nobody_becomes_active_and_the_pending_are_owed_a_confirmation(session):
    report = run_import(session, EXPORTS / "kit/subscribers.csv", confirm=True)
    found = states(session)
    assert found["maja@example.com"] == (PENDING, None) and found["nils@example.com"] == (PENDING, None)
    assert found["cancelled@example.com"] == (SUPPRESSED, "imported: kit cancelled")
    assert sorted(email for _, email in report.to_confirm) == ["maja@example.com", "nils@example.com"]


# --- dry run, recognition, bad input ---------------------------------------------------------------


def snapshot(session: Session) -> tuple:
    session.expire_all()
    subscribers = sorted(tuple(s.model_dump().values()) for s in session.exec(select(Subscriber)))
    events = session.exec(select(SubscriberEvent.id)).all()
    return subscribers, len(events)


def test_a_dry_run_counts_every_outcome_and_reason_and_stores_nothing(session, tmp_path):
    session.add(Subscriber(email="u1@example.com", status="bounced", source="test"))
    session.add(Subscriber(email="s2@example.com", status=ACTIVE, source="test", confirmed_at=utcnow()))
    session.commit()
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for member in (EXPORTS / "mailchimp").glob("*.csv"):
            zipped.write(member, member.name)
    before = snapshot(session)
    report = import_file(session, archive, key=KEY, confirm=False, skip_invalid=False, dry_run=True)
    session.commit()
    assert snapshot(session) == before
    assert dict(report.outcomes) == {
        ("add as active", "subscribed"): 2,
        ("skip: already on the list", "active"): 1,
        ("skip: left earlier", "bounced"): 1,
        ("add as suppressed", "unsubscribed"): 1,
        ("add as suppressed", "cleaned"): 2,
    }


def test_auto_refuses_an_unknown_header_naming_each_format_and_its_columns(session, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("Name,E-Mail\nAda,ada@example.com\n")
    with pytest.raises(FileRefused) as refused:
        import_file(session, path, key=KEY, confirm=False, skip_invalid=False)
    for expected in ("line 1", "substack: email, active_subscription", "mailchimp:", "kit: first_name"):
        assert expected in str(refused.value)


def test_a_plain_list_with_a_status_column_is_not_guessed(session, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email,status\nada@example.com,unsubscribed\n")
    with pytest.raises(FileRefused, match="'status'"):
        import_file(session, path, key=KEY, confirm=False, skip_invalid=False)
    run_import(session, path, wanted="csv")  # the owner says: every row is a reader I vouch for
    assert states(session) == {"ada@example.com": (ACTIVE, None)}


def test_from_a_platform_whose_columns_the_file_lacks_is_refused(session):
    with pytest.raises(FileRefused, match="--from kit expects first_name, email_address, state"):
        import_file(
            session,
            EXPORTS / "ghost/members.2026-12-03.csv",
            key=KEY,
            confirm=False,
            skip_invalid=False,
            wanted="kit",
        )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfee\x00m\x00a\x00i\x00l\x00\n\x00", "line 1: the file is UTF-16"),
        (b"email\nada@example.com\ncaf\xe9@example.com\n", "line 3: not UTF-8 (byte 0xe9"),
        (b"email\nada@example.com\x00\n", "line 2: holds a NUL byte"),
        (b'email,name\nada@example.com,"Ada" Lovelace\n', "line 2: not readable CSV"),
        (b'email,name\nada@example.com,"Ada\n', "not readable CSV"),
        (b"x," * 600 + b"email\n", "line 1: more than 500 columns"),
        (b"", "the file is empty"),
    ],
    ids=["utf16", "latin1", "nul", "quote", "unclosed-quote", "columns", "empty"],
)
def test_a_damaged_file_is_refused_with_its_line_and_nothing_is_stored(session, tmp_path, content, expected):
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    with pytest.raises(FileRefused) as refused:
        import_file(session, path, key=KEY, confirm=False, skip_invalid=True)
    assert expected in str(refused.value)
    assert states(session) == {}


def test_bad_times_and_unknown_statuses_are_row_errors_with_line_numbers(session, tmp_path):
    source = (EXPORTS / "kit/subscribers.csv").read_text().splitlines()
    source[2] = source[2].replace("inactive", "frozen")  # line 3
    source[4] = source[4].replace("2022-12-01T08:00:00Z", "1999-12-31T23:00:00Z")  # line 5
    source[5] = source[5].replace("2022-12-02T08:00:00Z", "2022-13-02T08:00:00Z")  # line 6
    path = tmp_path / "kit.csv"
    path.write_text("\n".join(source) + "\n")
    with pytest.raises(FileRefused) as refused:
        import_file(session, path, key=KEY, confirm=False, skip_invalid=False)
    problems = [str(p) for p in refused.value.problems]
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 5", "line 6"]
    assert (
        "state is 'frozen'; Kit writes one of active, inactive, cancelled, bounced, complained" in problems[0]
    )
    assert "before 2000" in problems[1] and "is not a time" in problems[2]
    assert states(session) == {}
    report = run_import(session, path, skip_invalid=True)
    assert len(report.skipped) == 3 and states(session) == {
        "maja@example.com": (ACTIVE, None),
        "cancelled@example.com": (SUPPRESSED, "imported: kit cancelled"),
    }


def test_a_zip_without_any_subscriber_export_is_refused(session, tmp_path):
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("posts.csv", "post_id,post_date,title\n1,2024-01-01,Hello\n")
    with pytest.raises(FileRefused, match="no CSV file in the zip is a subscriber export"):
        import_file(session, archive, key=KEY, confirm=False, skip_invalid=False)


def test_a_substack_zip_takes_its_email_list_and_leaves_the_posts(session, tmp_path):
    archive = tmp_path / "substack-export.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(EXPORTS / "substack/email_list.verdicts.csv", "email_list.verdicts.csv")
        zipped.writestr("posts.csv", "post_id,post_date,is_published,title\n111,2026-01-01,true,A Story\n")
    report = run_import(session, archive)
    assert report.ignored == ["posts.csv"]
    assert states(session) == EXPECTED["substack/email_list.verdicts.csv"][1]


def test_fixtures_are_the_files_the_readme_describes():
    assert {p.relative_to(EXPORTS).as_posix() for p in EXPORTS.rglob("*.csv")} == set(EXPECTED)


def test_mailchimps_non_subscribed_contacts_are_never_stored(session, tmp_path):
    """Contacts who never opted in (a shop's customers): Mailchimp puts them in a file of their own."""
    path = tmp_path / "nonsubscribed_members_export_6c7d8e9f0a.csv"
    shutil.copy(EXPORTS / "mailchimp/subscribed_members_export_6c7d8e9f0a.csv", path)
    report = run_import(session, path)
    assert report.parts[0].detail == "non-subscribed contacts"
    assert report.outcomes == {("skip: nothing to store", "non-subscribed contact"): 3}
    assert states(session) == {}


def test_a_reader_suppressed_by_an_import_leaves_the_weekly_list_size(session):
    from datetime import timedelta

    from newsletter.weekly import list_size_at

    session.add(Subscriber(email="u1@example.com", status=ACTIVE, source="test", confirmed_at=utcnow()))
    session.flush()
    session.add(
        SubscriberEvent(subscriber_id=1, kind="subscribed", source="cli", at=utcnow() - timedelta(days=1))
    )
    session.commit()
    assert list_size_at(session, utcnow()) == 1
    run_import(session, EXPORTS / "mailchimp/unsubscribed_members_export_6c7d8e9f0a.csv")
    later = utcnow() + timedelta(seconds=1)
    assert list_size_at(session, later) == 0, "suppressed: no longer on the list"


def test_a_zip_past_its_bounds_and_an_endless_line_are_refused(session, tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for n in range(21):
            zipped.writestr(f"part{n}.csv", "email\nada@example.com\n")
    with pytest.raises(FileRefused, match="more than 20 CSV files"):
        import_file(session, archive, key=KEY, confirm=False, skip_invalid=False)
    endless = tmp_path / "endless.csv"
    endless.write_bytes(b"email\n" + b"a" * (1024 * 1024 + 10))
    with pytest.raises(FileRefused, match="line 2: longer than 1,048,576 bytes"):
        import_file(session, endless, key=KEY, confirm=False, skip_invalid=False)
    assert states(session) == {}
