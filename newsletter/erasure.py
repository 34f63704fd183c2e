"""The guard that keeps an erased address out: a keyed hash of it, under a key the store itself keeps.

Erasing a reader deletes their address; what stays is `ErasedAddress`, an HMAC of the address, so
that no import, `subscribers add` or list owner can put it back: only its owner's own confirmation
does. The key must stay the same for as long as the hashes live, and must travel with them, so it is
kept in the store (`StoreKey`, made with the first erasure, copied by `newsletter db copy`), not
derived from the signing key: rotating `NEWSLETTER_SECRET_KEY`, losing `.newsletter-secret` or copying
the store into a database run with another key must not turn the guard off.

Hashes that releases before schema revision 0010 kept were made with the signing key. They are still
checked with the current signing key, and one that matches is kept again under the store's key, so
it survives a later change of key from then on.

The trade-off: whoever holds a copy of the store holds the key next to the hashes, and can test
guessed addresses against them (as with an unkeyed hash). The hashes only keep an address from being
read back by a person without the store; the store, which holds every other reader's address in
clear, must be protected anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from newsletter.models import ErasedAddress, StoreKey, utcnow

ERASURE_KEY = "erasure"


def email_hash(key: bytes, email: str) -> str:
    """Keyed, so the kept hash of an erased address cannot be reversed with a list of addresses
    by someone who has the hashes but not the key."""
    return hmac.new(key, b"erased-address\x00" + email.encode(), hashlib.sha256).hexdigest()


def store_key(session: Session, *, create: bool = False) -> bytes | None:
    """The store's erasure key; None when it has none yet (no erasure since revision 0010) and
    `create` is False. Made at most once per store, whoever asks first (a concurrent maker's key wins
    and both use it)."""
    row = session.get(StoreKey, ERASURE_KEY)
    if row is None and create:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        session.execute(
            insert(StoreKey)
            .values(name=ERASURE_KEY, value=secrets.token_hex(32), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = session.get(StoreKey, ERASURE_KEY, populate_existing=True)
    return bytes.fromhex(row.value) if row is not None else None


def _hashes(session: Session, email: str, signing_key: bytes | None) -> list[str]:
    """Every hash under which the address may be kept: the store's key, and the signing key of
    releases before 0010."""
    keys = [key for key in (store_key(session), signing_key) if key]
    return [email_hash(key, email) for key in keys]


def remember(session: Session, email: str) -> None:
    """Keep the hash of an address being erased, under the store's key (made if it has none)."""
    key = store_key(session, create=True)
    assert key is not None
    session.merge(ErasedAddress(email_hash=email_hash(key, email), erased_at=utcnow()))


def forget(session: Session, email: str, signing_key: bytes | None) -> None:
    """The owner confirmed their address themselves: the guard has done its job, under any key."""
    hashes = _hashes(session, email, signing_key)
    session.exec(delete(ErasedAddress).where(col(ErasedAddress.email_hash).in_(hashes)))


def erased_check(session: Session, signing_key: bytes | None) -> Callable[[str], bool]:
    """A test for many addresses at once (an import): the kept hashes are read once. A match under the
    signing key (a hash kept before 0010) is kept again under the store's key."""
    kept = set(session.exec(select(ErasedAddress.email_hash)))
    if not kept:
        return lambda email: False
    key = store_key(session)

    def erased(email: str) -> bool:
        if key is not None and email_hash(key, email) in kept:
            return True
        if signing_key and email_hash(signing_key, email) in kept:
            remember(session, email)
            return True
        return False

    return erased


def erased_row(session: Session, email: str, signing_key: bytes | None) -> ErasedAddress | None:
    """The kept hash of an erased address, under the store's key or (kept before 0010) the signing
    key; None when the address was not erased. Reads only (a look-up for the console's search)."""
    for key in (store_key(session), signing_key):
        if key is not None and (row := session.get(ErasedAddress, email_hash(key, email))) is not None:
            return row
    return None


def is_erased(session: Session, email: str, signing_key: bytes | None) -> bool:
    """Whether the address was erased (one look-up per key); a match under the signing key is kept
    again under the store's key."""
    key = store_key(session)
    if key is not None and session.get(ErasedAddress, email_hash(key, email)) is not None:
        return True
    if signing_key and session.get(ErasedAddress, email_hash(signing_key, email)) is not None:
        remember(session, email)
        return True
    return False
