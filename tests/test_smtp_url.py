"""NEWSLETTER_SMTP_URL: passwords with any character parse, reach the server intact, and never appear
in an error."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import ValidationError

from newsletter.config import Settings
from newsletter.mail import FixedContent, OutgoingMessage
from newsletter.providers.smtp import SmtpProvider
from newsletter.smtp_url import mask_smtp_url, parse_smtp_url
from tests.web_server import free_port

PASSWORDS = ["pa/ss", "p@ss/w:rd?#x", "S3cr3t%2Fpa%40ss", "plain"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("smtp", "mail.example.com", 25, None, None)),
        ("smtps://mail.example.com/", ("smtps", "mail.example.com", 465, None, None)),
        ("SMTP+STARTTLS://u:p@mail.example.com:2525", ("smtp+starttls", "mail.example.com", 2525, "u", "p")),
        ("smtp://user:pa/ss@127.0.0.1:1025", ("smtp", "127.0.0.1", 1025, "user", "pa/ss")),
        ("smtp://user:p@ss/w:rd?#x@host", ("smtp", "host", 25, "user", "p@ss/w:rd?#x")),
        (
            "smtp://user%40example.com:S3cr3t%2Fpa%40ss@host",
            ("smtp", "host", 25, "user@example.com", "S3cr3t/pa@ss"),
        ),
        ("smtp://user@[::1]:25", ("smtp", "::1", 25, "user", None)),
    ],
)
def test_urls_parse_with_any_character_in_the_password(url, expected):
    parsed = parse_smtp_url(url)
    assert (parsed.scheme, parsed.host, parsed.port, parsed.user, parsed.password) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://user:S3cr3tPw@host",
        "smtp://user:S3cr3tPw@",
        "smtp://user:S3cr3tPw@host:99999",
        "smtp://user:S3cr3t/Pw",  # no @: the whole rest is the host, and it is not one
        "smtp://:S3cr3tPw@host",
        "smtp://user:S3cr3tPw@host name",
        "mail.example.com:25",
    ],
)
def test_a_bad_url_is_refused_naming_the_variable_and_never_the_password(url):
    with pytest.raises(ValueError, match="NEWSLETTER_SMTP_URL") as refused:
        parse_smtp_url(url)
    assert "S3cr3t" not in str(refused.value) and "Pw" not in str(refused.value)
    with pytest.raises(ValidationError) as invalid:
        Settings(_env_file=None, smtp_url=url)
    assert "S3cr3t" not in str(invalid.value)


def test_the_masked_url_keeps_user_host_and_port_and_hides_the_password():
    assert mask_smtp_url("smtp://user:pa/ss@host:587") == "smtp://user:***@host:587"
    assert mask_smtp_url("smtp://user:S3cr3t/Pw") == "(the SMTP URL)"
    assert "pa/ss" not in repr(SmtpProvider("smtp://user:pa/ss@host:587"))


class Recorder:
    def __init__(self):
        self.logins: list[tuple[str, str]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_password_reaches_a_real_smtp_server_intact(password):
    """A real SMTP server (aiosmtpd) with AUTH: the password it receives is the decoded one."""
    recorder = Recorder()
    port = free_port()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port, authenticator=recorder, auth_require_tls=False
    )
    controller.start()
    try:
        provider = SmtpProvider(f"smtp://editor:{password}@127.0.0.1:{port}", timeout=10)
        message = OutgoingMessage(
            sender="Verdicts <issue@example.com>",
            to="reader@example.com",
            subject="Hello",
            content=FixedContent(html="<p>Hello</p>", text="Hello"),
            message_id="<1@example.com>",
            tag="test",
        )
        results = asyncio.run(provider.send_batch([message]))
    finally:
        controller.stop()
    assert results[0].accepted
    decoded = password.replace("%2F", "/").replace("%40", "@")
    assert recorder.logins == [("editor", decoded)]
