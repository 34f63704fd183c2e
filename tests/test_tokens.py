"""Signed, expiring link tokens."""

from __future__ import annotations

import pytest

from newsletter.tokens import Signer, TokenError

KEY = b"k" * 40
LATER = 2_000_000_000


@pytest.fixture
def signer() -> Signer:
    return Signer(KEY)


def test_a_token_verifies_for_its_purpose_and_gives_back_its_subject(signer):
    token = signer.sign("reader", 42, LATER)
    claims = signer.verify(token, "reader", now=LATER - 1)
    assert (claims.subject, claims.expires_at) == (42, LATER)
    assert len(token) < 48 and token.replace(".", "").replace("-", "").replace("_", "").isalnum()


def test_an_expired_token_is_refused(signer):
    token = signer.sign("reader", 42, LATER)
    with pytest.raises(TokenError) as refused:
        signer.verify(token, "reader", now=LATER + 1)
    assert refused.value.reason == "expired"


def test_a_token_for_one_purpose_does_not_pass_for_another(signer):
    token = signer.sign("reader", 42, LATER)
    with pytest.raises(TokenError) as refused:
        signer.verify(token, "confirm", now=LATER - 1)
    assert refused.value.reason == "invalid"


@pytest.mark.parametrize("field", [0, 1, 2])
def test_any_tampered_part_is_refused(signer, field):
    parts = signer.sign("reader", 42, LATER).split(".")
    last = parts[field][-1]
    parts[field] = parts[field][:-1] + ("1" if last != "1" else "2")
    with pytest.raises(TokenError) as refused:
        signer.verify(".".join(parts), "reader", now=LATER - 10**8)
    assert refused.value.reason in {"invalid", "malformed"}


def test_a_token_signed_with_another_key_is_refused(signer):
    other = Signer(b"o" * 40).sign("reader", 42, LATER)
    with pytest.raises(TokenError):
        signer.verify(other, "reader", now=LATER - 1)


@pytest.mark.parametrize(
    "token", ["", "abc", "a.b", "a.b.c.d", "1.zz.", "-1.zz.abc", "1.ZZ.abc", "x" * 200, "01.zz.abc"]
)
def test_malformed_tokens_are_refused_not_crashed_on(signer, token):
    with pytest.raises(TokenError):
        signer.verify(token, "reader", now=0)


def test_a_short_key_is_refused():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Signer(b"short")


def test_a_token_of_any_characters_is_malformed_never_an_exception():
    """compare_digest takes ASCII strings only: the MAC's shape is checked first."""
    signer = Signer(b"k" * 40)
    token = signer.sign("reader", 7, 2_000_000_000)
    subject, expiry, mac = token.split(".")
    for bad in (
        token + "é",
        f"{subject}.{expiry}.{mac[:-1]}é",
        f"{subject}.{expiry}.{'é' * 24}",
        f"{subject}.{expiry}.{mac}\U0001f600",
        f"{subject}.{expiry}.{mac[:-1]}",
        f"{subject}.{expiry}.{mac}A",
        f"{subject}.{expiry}.{mac[:-1]}=",
        f"{subject}.{expiry}.{mac[:-1]}\x00",
    ):
        with pytest.raises(TokenError) as refused:
            signer.verify(bad, "reader")
        assert refused.value.reason == "malformed", bad
    assert signer.verify(token, "reader").subject == 7
