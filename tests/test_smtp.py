"""The SMTP adapter against a real SMTP server (aiosmtpd) on 127.0.0.1, like Mailpit or MailHog."""

from __future__ import annotations

import asyncio
import email
from email import policy

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.delivery import SendAborted, Sender
from newsletter.ledger import counts
from newsletter.models import Issue, IssueStatus
from newsletter.providers import make_provider
from newsletter.subscriptions import add_active
from tests.conftest import TEST_KEY
from tests.test_providers import READERS, store  # noqa: F401  (fixture)
from tests.web_server import free_port


class Catcher:
    """Keeps every message; refuses recipients whose address starts with "inactive"."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.startswith("inactive"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def catcher():
    handler = Catcher()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def test_smtp_delivers_each_reader_one_real_message(catcher, store, tmp_path):  # noqa: F811
    handler, port = catcher
    engine, issue_id, url = store
    with session_scope(engine) as session:
        add_active(session, ["inactive9@example.com"], source="test", key=TEST_KEY.encode())
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=TEST_KEY,
        timezone="Europe/Berlin",
        provider="smtp",
        smtp_url=f"smtp://127.0.0.1:{port}",
        send_batch_size=10,
    )

    async def go():
        provider = make_provider(settings)
        return await Sender(engine, settings, provider).send(issue_id)

    report = asyncio.run(go())
    assert report.sent == len(READERS)
    assert report.suppressed == {"permanent error for the address": 1}
    assert sorted(m["To"] for m in handler.messages) == sorted(READERS)
    first = handler.messages[0]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.get_body(("html",)) is not None and first.get_body(("plain",)) is not None
    with Session(engine) as session:
        assert counts(session, issue_id) == {"sent": len(READERS), "suppressed": 1}


def test_an_unreachable_smtp_server_is_retried_then_stops_the_send_with_the_queue_kept(store):  # noqa: F811
    engine, issue_id, url = store
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=TEST_KEY,
        timezone="Europe/Berlin",
        provider="smtp",
        smtp_url=f"smtp://127.0.0.1:{free_port()}",
        send_max_attempts=2,
        send_batch_size=50,
    )

    async def go():
        return await Sender(engine, settings, make_provider(settings)).send(issue_id)

    with pytest.raises(SendAborted, match="cannot connect") as stopped:
        asyncio.run(go())
    assert "did not take a request in 2 attempt(s)" in str(stopped.value)
    with Session(engine) as session:
        assert counts(session, issue_id) == {"queued": len(READERS)}
        assert session.get(Issue, issue_id).status == IssueStatus.SENDING
