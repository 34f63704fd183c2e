"""RFC 5321's length bounds in the address check (newsletter/headers.py `normalise_email`)."""

from __future__ import annotations

import pytest

from newsletter.headers import HeaderValueError, normalise_email


def domain_of(length: int) -> str:
    """A valid domain of exactly `length` characters, in labels of at most 63."""
    labels, left = [], length
    while left > 0:
        size = min(63, left)
        if left - size == 1:  # never leave a remainder that cannot be a ".x" label
            size -= 2
        labels.append("d" * size)
        left -= size + 1
    domain = ".".join(labels)
    assert len(domain) == length
    return domain


@pytest.mark.parametrize(
    "address",
    [
        "l" * 64 + "@example.com",
        "a@" + "d" * 63 + ".com",
        "l" * 64 + "@" + domain_of(254 - 65),
    ],
    ids=["local-64", "label-63", "total-254"],
)
def test_addresses_at_the_bounds_are_accepted(address):
    assert normalise_email(address) == address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("l" * 65 + "@example.com", "before the @ is 65 characters long; at most 64"),
        ("a@" + "d" * 64 + ".com", "characters"),
        ("l" * 64 + "@" + domain_of(254 - 64), "longer than 254"),
        ("l" * 64 + "@" + "ä" * 40 + "." + "ö" * 40 + "." + "ü" * 40 + ".de", "too long"),
    ],
    ids=["local-65", "label-64", "total-255", "total-over-in-punycode"],
)
def test_addresses_past_the_bounds_are_refused_with_the_reason(address, reason):
    with pytest.raises(HeaderValueError, match=reason):
        normalise_email(address)


MEMO_CASES = [
    "Ann@Example.COM",
    "ann@example.com",
    "bücher@example.com",
    "ann@bücher.example",
    "ann@xn--bcher-kva.example",
    "ann@example",
    "ann@-bad-.example.com",
    "ann@exa_mple.com",
    "ann@" + "a" * 64 + ".com",
    "ann@localhost",
    "ann@example..com",
]


def _outcome(address: str) -> str:
    try:
        return normalise_email(address)
    except HeaderValueError as exc:
        return f"refused: {exc}"


def test_the_memoised_domain_check_answers_exactly_as_email_validator_does(monkeypatch):
    """Each domain is checked once per process (imports of long lists); the answers must not change."""
    import sys

    from email_validator import syntax

    module = sys.modules["email_validator.validate_email"]
    assert getattr(module.validate_email_domain_name, "memoised", False), "the memo is in place"
    memoised = [[_outcome(a) for a in MEMO_CASES] for _ in range(2)]  # the second round from the memo
    monkeypatch.setattr(module, "validate_email_domain_name", syntax.validate_email_domain_name)
    plain = [_outcome(a) for a in MEMO_CASES]
    assert memoised == [plain, plain]
    assert sum(o.startswith("refused") for o in plain) >= 4
