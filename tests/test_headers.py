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
