"""Checks for every value that ends up in an email header.

Header injection works through CR, LF and other control characters; nothing typed by a reader or an
editor reaches a header without passing through one of these functions first.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from email.headerregistry import Address
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
# RFC 5321 4.5.3.1: a local part of at most 64 octets, a domain of at most 255 and a label of at most
# 63 (RFC 1035); the whole address at most 254, since a path of at most 256 holds it in <>.
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
MAX_LABEL = 63


def _memoise_domain_check() -> None:
    """email_validator checks every address's domain afresh (IDNA rules: about 60% of its time), and
    a list of 100,000 readers shares a few thousand domains. The same check is memoised per domain:
    the same function gives the same answers (a refusal raises and is not cached); each caller gets
    its own copy of the answer. Validating an imported list takes a third of the time."""
    module = sys.modules.get("email_validator.validate_email")
    check = getattr(module, "validate_email_domain_name", None)
    if check is None or hasattr(check, "memoised"):
        return
    cached = functools.lru_cache(maxsize=4096)(check)

    def memoised(domain, test_environment=False, globally_deliverable=True):
        return dict(cached(domain, test_environment, globally_deliverable))

    memoised.memoised = True
    module.validate_email_domain_name = memoised


_memoise_domain_check()


class HeaderValueError(ValueError):
    """A value cannot be put in an email header; the message says why."""


def check_header_value(value: str, *, max_length: int = 998, field: str = "value") -> str:
    """Return `value` stripped, or raise if it holds a line break or control character or is too long."""
    if _FORBIDDEN.search(value):
        raise HeaderValueError(f"{field} must be a single line without control characters")
    value = value.strip()
    if not value:
        raise HeaderValueError(f"{field} must not be empty")
    if len(value) > max_length:
        raise HeaderValueError(f"{field} is {len(value)} characters long; at most {max_length} are allowed")
    return value


def normalise_email(raw: str) -> str:
    """Validate an address syntactically (no DNS) and return its canonical, lower-cased ASCII form.

    Addresses are compared case-insensitively everywhere: `Ann@Example.com` and `ann@example.com`
    are one reader. International domains are kept in their ASCII (punycode) form; local parts must
    be ASCII, because most providers cannot deliver SMTPUTF8 mail.
    """
    if not isinstance(raw, str):
        raise HeaderValueError("email address must be text")
    if _FORBIDDEN.search(raw):
        raise HeaderValueError("email address must not contain line breaks or control characters")
    candidate = unicodedata.normalize("NFC", raw.strip())
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise HeaderValueError(f"email address is longer than {MAX_EMAIL_LENGTH} characters")
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise HeaderValueError(f"not a valid email address: {exc}") from exc
    address = (result.ascii_email or result.normalized).lower()
    check_address_lengths(address)
    return address


def check_address_lengths(address: str) -> None:
    """RFC 5321's bounds, counted in octets of the ASCII form (an international domain is longer
    in punycode than as typed)."""
    local, _, domain = address.rpartition("@")
    too_long = [
        (len(local.encode()), MAX_LOCAL_PART, "the part before the @"),
        (len(domain.encode()), MAX_DOMAIN, "the domain"),
        (len(address.encode()), MAX_EMAIL_LENGTH, "the address"),
    ]
    too_long += [
        (len(label.encode()), MAX_LABEL, f"the domain label {label[:20]!r}") for label in domain.split(".")
    ]
    for length, limit, what in too_long:
        if length > limit:
            raise HeaderValueError(
                f"not a valid email address: {what} is {length} characters long; at most {limit} are allowed"
            )


def parse_from_address(value: str) -> Address:
    """Parse a `Name <addr@host>` From value into an Address, validating both parts."""
    check_header_value(value, max_length=300, field="From")
    display, addr = parseaddr(value)
    if not addr:
        raise HeaderValueError(f"From {value!r} is not 'Name <address@domain>'")
    email = normalise_email(addr)
    local, _, domain = email.rpartition("@")
    return Address(display_name=display, username=local, domain=domain)
