"""Consent holds: a reader who left (unsubscribed, one-click, bounced, complained, suppressed by an
import of another platform's export, erased) comes back only by confirming their own address. No
signup by someone else, no import, no `subscribers add` can make them active; the next issue does not
reach them. Real app, real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from newsletter import schema
from newsletter.db import make_engine
from newsletter.models import ErasedAddress, Subscriber, SubscriberEvent, SubscriberStatus, utcnow
from newsletter.subscriber_files import import_csv
from newsletter.subscriptions import (
    LEFT,
    Outcome,
    add_active,
    confirm,
    email_hash,
    erase,
    request_signup,
    unsubscribe,
)
from newsletter.tokens import Signer
from tests.conftest import TEST_KEY
from tests.databases import database_url
from tests.web_server import link_in, running_server

KEY = TEST_KEY.encode()
SIGNER = Signer(KEY)
WEBHOOK_USER, WEBHOOK_PASSWORD = "hooks", "webhook-password-for-tests"
LEAVING = ["unsubscribe-page", "one-click", "bounced", "complained", "suppressed", "erased"]
EXPECTED = {
    "unsubscribe-page": "unsubscribed",
    "one-click": "unsubscribed",
    "bounced": "bounced",
    "complained": "complained",
    "suppressed": "suppressed",
}
SUBSTACK_HEADER = "email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = {"postmark_webhook_user": WEBHOOK_USER, "postmark_webhook_password": WEBHOOK_PASSWORD}
    with running_server(tmp_path_factory.mktemp("consent"), **settings) as running:
        yield running


def status_of(server, address: str) -> str | None:
    """The state of the row holding `address`; None when no row holds it (erased)."""
    engine = make_engine(database_url(server.directory))
    try:
        with Session(engine) as session:
            row = session.exec(select(Subscriber).where(Subscriber.email == address)).first()
            return row.status if row else None
    finally:
        engine.dispose()


def reader_id(server, address: str) -> int:
    engine = make_engine(database_url(server.directory))
    try:
        with Session(engine) as session:
            return session.exec(select(Subscriber.id).where(Subscriber.email == address)).one()
    finally:
        engine.dispose()


def postmark_event(http: httpx.Client, payload: dict) -> None:
    auth = base64.b64encode(f"{WEBHOOK_USER}:{WEBHOOK_PASSWORD}".encode()).decode()
    answer = http.post("/webhooks/postmark", json=payload, headers={"Authorization": f"Basic {auth}"})
    assert answer.status_code == 200, answer.text


def leave(server, http: httpx.Client, address: str, how: str) -> None:
    token = SIGNER.sign("reader", reader_id(server, address), int(time.time()) + 3600)
    if how == "unsubscribe-page":
        assert http.post(f"/unsubscribe/{token}").status_code == 200
    elif how == "one-click":
        answer = http.post(
            f"/unsubscribe/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200
    elif how == "bounced":
        postmark_event(
            http,
            {
                "RecordType": "Bounce",
                "ID": 900001 + len(address),
                "Type": "HardBounce",
                "Email": address,
                "BouncedAt": "2026-11-30T10:00:00Z",
                "Description": "mailbox not found",
                "Inactive": True,
            },
        )
    elif how == "complained":
        postmark_event(
            http,
            {
                "RecordType": "SpamComplaint",
                "ID": 800001 + len(address),
                "Type": "SpamComplaint",
                "Email": address,
                "BouncedAt": "2026-11-30T10:00:00Z",
            },
        )
    elif how == "suppressed":  # the Substack export says they turned emails off there
        export = server.directory / "email_list.verdicts.csv"
        export.write_text(SUBSTACK_HEADER + f"{address},false,,,true,2024-01-15T10:00:00.000Z,\n")
        imported = server.cli("subscribers", "import", str(export))
        assert imported.returncode == 0, imported.stderr
    else:
        assert http.post(f"/preferences/{token}/erase", data={"confirm": "yes"}).status_code == 200


def test_a_reader_who_left_comes_back_only_by_confirming_themselves(server):
    readers = {how: f"left-{how}@example.com" for how in LEAVING}
    added = server.cli("subscribers", "add", *readers.values())
    assert added.returncode == 0, added.stderr
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for how, address in readers.items():
            leave(server, http, address, how)
        time.sleep(1.1)  # links carry whole seconds: the strangers' requests come in a later second
        for how, address in readers.items():
            assert status_of(server, address) == EXPECTED.get(how), how
            if how != "erased":  # their unsubscribe link says they left, and offers the way back
                token = SIGNER.sign("reader", reader_id(server, address), int(time.time()) + 3600)
                page = http.get(f"/unsubscribe/{token}")
                assert page.status_code == 200 and "You have left the list" in page.text, how
            # A stranger types the address into the form and the JSON endpoint, twice.
            for _ in range(2):
                assert http.post("/api/subscribe", json={"email": address}).status_code in (200, 202)
            assert status_of(server, address) == EXPECTED.get(how, "pending"), how

        # The editor's routine: an old list, imported as vouched for, with --confirm, and added by hand.
        old_list = server.directory / "old-list.csv"
        old_list.write_text("email\n" + "\n".join(a.upper() for a in readers.values()) + "\n")
        imported = server.cli("subscribers", "import", str(old_list))
        assert imported.returncode == 0, imported.stderr
        assert "0 added as active, 0 pending made active" in imported.stdout
        assert server.cli("subscribers", "import", "--confirm", str(old_list)).returncode == 0
        by_hand = server.cli("subscribers", "add", *readers.values())
        assert by_hand.returncode == 0 and "Added 0;" in by_hand.stdout
        assert "Not added (erased at their request" in by_hand.stdout
        for how, address in readers.items():
            assert status_of(server, address) != "active", how

        # The next issue reaches none of them.
        for step in (["issue", "compose"], ["issue", "send"]):
            result = server.cli(*step)
            assert result.returncode == 0, result.stderr
        sent_to = {p.read_text(errors="replace") for p in server.outbox.glob("2*/*.eml")}
        for address in readers.values():
            assert not any(f"To: {address}" in message for message in sent_to), address

        # Each confirms the newest link in their own inbox, and only that brings them back.
        for how, address in readers.items():
            confirm_path = link_in(server.mail_to(address, count=1), "/confirm/")
            answer = http.post(confirm_path)
            assert answer.status_code == 200, (how, answer.text)
            assert status_of(server, address) == "active", how


# --- the services, one path at a time ---------------------------------------------------------------


def _reader(session: Session, address: str, status: str = SubscriberStatus.ACTIVE) -> Subscriber:
    row = Subscriber(email=address, status=status, confirmed_at=utcnow(), source="test")
    session.add(row)
    session.commit()
    return row


def _left(session: Session, address: str, how: str, tmp_path=None) -> Subscriber:
    reader = _reader(session, address)
    if how == "suppressed":  # an export from the platform they came from says they left it
        export = tmp_path / "email_list.csv"
        export.write_text(SUBSTACK_HEADER + f"{address},false,,,true,2024-01-15T10:00:00.000Z,\n")
        report = import_csv(session, export, key=KEY, confirm=False, skip_invalid=False)
        assert report.suppressed == 1
    elif how == "erased":
        erase(session, reader, key=KEY)
    elif how == "unsubscribed":
        unsubscribe(session, reader.id, source="test", client=None)
    else:  # what the event intake does on a hard bounce or a complaint
        reader.status = how
        session.add(reader)
        session.add(SubscriberEvent(subscriber_id=reader.id, kind=how, source="postmark webhook"))
    session.commit()
    return reader


def _ask_again(session: Session, address: str) -> int:
    result = request_signup(session, address, source="form", client="203.0.113.9", per_address=(50, 3600))
    session.commit()
    return result.subscriber_id


@pytest.mark.parametrize("how", ["unsubscribed", "bounced", "complained", "suppressed", "erased"])
def test_no_owner_path_activates_a_reader_who_left_after_a_strangers_signup(session, tmp_path, how):
    address = f"{how}@example.com"
    _left(session, address, how, tmp_path)
    again = _ask_again(session, address)
    row = session.get(Subscriber, again)
    assert row.status == (SubscriberStatus.PENDING if how == "erased" else how)

    result = add_active(session, [address], source="test", key=KEY)
    session.commit()
    assert result.added == [] and (result.erased or result.not_reactivated)
    old_list = tmp_path / "old-list.csv"
    old_list.write_text(f"email\n{address}\n")
    for confirm_mode in (False, True):
        report = import_csv(session, old_list, key=KEY, confirm=confirm_mode, skip_invalid=False)
        session.commit()
        assert report.activated == 0 and report.added == [] and report.to_confirm == []
    session.refresh(row)
    assert row.status != SubscriberStatus.ACTIVE

    issued = row.requested_at.replace(microsecond=0)
    assert confirm(session, again, issued, client=None, key=KEY) == Outcome.DONE
    session.commit()
    session.refresh(row)
    assert row.status == SubscriberStatus.ACTIVE
    assert session.get(ErasedAddress, email_hash(KEY, address)) is None


@pytest.mark.parametrize("how", ["unsubscribed", "bounced", "complained", "suppressed"])
def test_a_confirmation_link_from_before_leaving_or_before_the_new_request_is_stale(session, tmp_path, how):
    address = f"stale-{how}@example.com"
    reader = _left(session, address, how, tmp_path)
    before_leaving = utcnow() - timedelta(days=1)
    assert confirm(session, reader.id, before_leaving, client=None, key=KEY) == Outcome.STALE, (
        "no new request: nothing to confirm"
    )
    _ask_again(session, address)
    session.refresh(reader)
    too_early = reader.requested_at.replace(microsecond=0) - timedelta(seconds=1)
    assert confirm(session, reader.id, too_early, client=None, key=KEY) == Outcome.STALE
    assert reader.status == how


def test_an_erased_address_is_not_added_back_by_hand(session):
    reader = _reader(session, "gone@example.com")
    erase(session, reader, key=KEY)
    session.commit()
    result = add_active(session, ["Gone@Example.com"], source="test", key=KEY)
    session.commit()
    assert result.erased == ["gone@example.com"] and result.added == []
    assert session.exec(select(Subscriber).where(Subscriber.email == "gone@example.com")).first() is None


def test_pending_readers_who_never_left_are_still_vouched_for_by_their_list_owner(session, tmp_path):
    for address in ("new1@example.com", "new2@example.com"):
        _ask_again(session, address)
    assert add_active(session, ["new1@example.com"], source="test", key=KEY).added == ["new1@example.com"]
    old_list = tmp_path / "list.csv"
    old_list.write_text("email\nnew2@example.com\n")
    assert import_csv(session, old_list, key=KEY, confirm=False, skip_invalid=False).activated == 1
    session.commit()
    statuses = {s.email: s.status for s in session.exec(select(Subscriber))}
    assert statuses == {"new1@example.com": "active", "new2@example.com": "active"}


def test_the_upgrade_puts_readers_wrongly_made_pending_back_where_they_left(settings):
    engine = make_engine(settings.database_url)
    schema.upgrade(engine, "0002")  # the release before this fix
    now = utcnow().replace(tzinfo=None)
    rows = [
        (1, "was-unsubscribed@example.com", "pending", ["confirmed", "unsubscribed", "signup_requested"]),
        (2, "was-bounced@example.com", "pending", ["confirmed", "bounced", "signup_requested"]),
        (3, "new@example.com", "pending", ["signup_requested"]),
        (4, "back@example.com", "active", ["unsubscribed", "signup_requested", "confirmed"]),
    ]
    with engine.begin() as connection:
        for sid, address, status, kinds in rows:
            connection.execute(
                text(
                    "INSERT INTO subscriber (id, email, status, source, created_at, updated_at) "
                    "VALUES (:id, :email, :status, 'test', :now, :now)"
                ),
                {"id": sid, "email": address, "status": status, "now": now},
            )
            for kind in kinds:
                connection.execute(
                    text(
                        "INSERT INTO subscriberevent (subscriber_id, kind, source, at) "
                        "VALUES (:id, :kind, 'test', :now)"
                    ),
                    {"id": sid, "kind": kind, "now": now},
                )
    schema.upgrade(engine)
    with Session(engine) as session:
        statuses = {s.email: s.status for s in session.exec(select(Subscriber))}
    assert statuses == {
        "was-unsubscribed@example.com": "unsubscribed",
        "was-bounced@example.com": "bounced",
        "new@example.com": "pending",
        "back@example.com": "active",
    }
    engine.dispose()


def test_every_left_state_is_covered_here():
    """A new way of leaving must be added to these tests (and to the consent rule) deliberately."""
    assert {str(s) for s in LEFT} == {"unsubscribed", "bounced", "complained", "suppressed"}
