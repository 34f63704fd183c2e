"""The .eml form of a message, checked by the stdlib's own parser."""

from __future__ import annotations

import email
import json
import quopri
import random
from datetime import UTC, datetime
from email import policy

import pytest

from newsletter.encoding import JSON_STRING, QuotedPrintableTemplate
from newsletter.headers import HeaderValueError, normalise_email
from newsletter.mail import FixedContent, OutgoingMessage, encoded_body, to_eml

SENT_AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def message(**changes) -> OutgoingMessage:
    fields = {
        "sender": "Weekly AI Tool Verdicts <issue@verdicts.example.com>",
        "to": "ada@example.com",
        "subject": "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite, plus 2 more verdicts",
        "html": '<!doctype html>\n<html lang="en"><body><p>Panel 50% — “quoted” = fine</p></body></html>',
        "text": "Panel ship 50% — “quoted” = fine\nSecond line with trailing space \n" + "long " * 40,
        "message_id": "<2026-w48.7@verdicts.example.com>",
        "unsubscribe_url": "https://verdicts.example.com/unsubscribe/7.abc.def",
        "list_id": "Weekly AI Tool Verdicts <weekly.verdicts.example.com>",
        "tag": "2026-w48",
    } | changes
    fields["content"] = FixedContent(html=fields.pop("html"), text=fields.pop("text"))
    return OutgoingMessage(**fields)


def parsed(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def test_headers_and_both_parts_round_trip_through_the_stdlib_parser():
    original = message()
    mail = parsed(to_eml(original, SENT_AT))
    assert mail["From"] == original.sender
    assert mail["To"] == "ada@example.com"
    assert mail["Subject"] == original.subject
    assert mail["Date"].datetime == SENT_AT
    assert mail["Message-ID"] == original.message_id
    assert mail["List-Unsubscribe"] == "<https://verdicts.example.com/unsubscribe/7.abc.def>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["List-Id"] == original.list_id
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.iter_parts()
    assert text.get_content_type() == "text/plain" and text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content().replace("\r\n", "\n").rstrip("\n") == original.text.rstrip("\n")
    assert html.get_content().replace("\r\n", "\n").rstrip("\n") == original.html
    assert mail.defects == [] and all(part.defects == [] for part in mail.walk())


def test_non_ascii_subject_and_sender_name_are_encoded_words_that_decode_back():
    original = message(
        subject="Verdicts — über alles, “quoted”", sender="Verdicts Café <issue@verdicts.example.com>"
    )
    raw = to_eml(original, SENT_AT)
    assert raw.isascii()
    mail = parsed(raw)
    assert mail["Subject"] == original.subject
    assert mail["From"].addresses[0].display_name == "Verdicts Café"


def test_every_line_is_crlf_terminated_and_at_most_76_characters_in_bodies():
    raw = to_eml(message(html="<p>" + "x" * 5000 + "</p>"), SENT_AT)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert max(len(line) for line in head.split(b"\r\n")) <= 998


@pytest.mark.parametrize("field", ["subject", "to", "tag", "unsubscribe_url"])
def test_a_line_break_in_any_header_value_is_refused(field):
    with pytest.raises(HeaderValueError, match="single line"):
        to_eml(message(**{field: "x\r\nBcc: victim@example.com"}), SENT_AT)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Ann@Example.COM", "ann@example.com"),
        ("  bob@example.com ", "bob@example.com"),
        ("ann@bücher.de", "ann@xn--bcher-kva.de"),
    ],
)
def test_addresses_are_normalised_to_lower_case_ascii(raw, normalised):
    assert normalise_email(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    [
        "not-an-address",
        "a@b",
        "ann@example.com\r\nBcc: x@example.com",
        "ünï@example.com",
        "a" * 250 + "@example.com",
    ],
    ids=["no-at", "no-dot", "crlf", "non-ascii-local", "too-long"],
)
def test_bad_addresses_are_refused(raw):
    with pytest.raises(HeaderValueError):
        normalise_email(raw)


ALPHABET = "ab =\t\n.€“”<>&é" + "x" * 10


@pytest.mark.parametrize("seed", range(40))
def test_template_encoding_decodes_to_the_filled_text_with_short_lines(seed):
    """Encoding the literal parts once and joining per reader must equal encoding the whole text."""
    rng = random.Random(seed)

    def chunk(n: int) -> str:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(n)))

    literals = [chunk(400) for _ in range(rng.randrange(1, 6))]
    values = [chunk(90) or "v" for _ in literals[1:]]
    encoded = QuotedPrintableTemplate(literals).fill(values)
    expected = "".join(part for pair in zip(literals, [*values, ""], strict=True) for part in pair)
    assert quopri.decodestring(encoded).decode() == expected.replace("\r\n", "\n").replace("\n", "\r\n")
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert b"\n" not in encoded.replace(b"\r\n", b"")


def test_personalised_eml_is_the_same_message_as_the_plain_path(samples, settings):
    from newsletter.personalise import IssueMailer
    from newsletter.render import Renderer
    from tests.test_render import issue_of

    rendered = Renderer().render_issue(issue_of(samples[:2], settings))
    mailer = IssueMailer(rendered, settings, tag="2026-w48", expires_at=2_000_000_000)
    fast = mailer.message(delivery_id=3, subscriber_id=3, email="o'hara=x@example.com")
    slow = message(html=fast.html, text=fast.text, to=fast.to)
    fast_mail, slow_mail = parsed(to_eml(fast, SENT_AT)), parsed(to_eml(slow, SENT_AT))
    for subtype in ("plain", "html"):
        assert fast_mail.get_body((subtype,)).get_content() == slow_mail.get_body((subtype,)).get_content()
    assert "o&#x27;hara=x@example.com" in fast_mail.get_body(("html",)).get_content()


@pytest.mark.parametrize("seed", range(20))
def test_json_template_encoding_equals_encoding_the_filled_text(seed):
    rng = random.Random(seed)
    literals = [
        "".join(rng.choice(ALPHABET + '"\\\x01/') for _ in range(rng.randrange(300))) for _ in range(4)
    ]
    values = ["".join(rng.choice(ALPHABET + '"') for _ in range(rng.randrange(1, 40))) for _ in range(3)]
    filled = "".join(part for pair in zip(literals, [*values, ""], strict=True) for part in pair)
    encoded = JSON_STRING.template(literals).fill(values)
    assert encoded == json.dumps(filled, ensure_ascii=False)[1:-1].encode()
    assert json.loads(b'"' + encoded + b'"') == filled


def test_a_personalised_body_encodes_like_its_plain_text(samples, settings):
    from newsletter.personalise import IssueMailer
    from newsletter.render import Renderer
    from tests.test_render import issue_of

    rendered = Renderer().render_issue(issue_of(samples[:1], settings))
    message = IssueMailer(rendered, settings, tag="t", expires_at=2_000_000_000).message(
        delivery_id=1, subscriber_id=1, email="a&b@example.com"
    )
    for part in ("html", "text"):
        plain = getattr(message, part)
        assert (
            encoded_body(message, part, JSON_STRING) == json.dumps(plain, ensure_ascii=False)[1:-1].encode()
        )
