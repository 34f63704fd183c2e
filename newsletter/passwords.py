"""Editor passwords, stored as a scrypt hash (hashlib, no extra dependency).

The format is one line without characters a shell or a `.env` file treats specially:

    scrypt:<n>:<r>:<p>:<salt>:<hash>

`n`, `r`, `p` are scrypt's cost parameters (n a power of two), `salt` 16 random bytes and `hash` the
32-byte key, both URL-safe base64 without padding. `newsletter console hash-password` makes one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "scrypt"
COST = (2**14, 8, 1)  # 16 MB and ~50 ms per check on this machine: cheap for a login, costly in bulk
MAX_COST_N = 2**20
KEY_BYTES = 32
SALT_BYTES = 16
MAX_PASSWORD_CHARS = 1024


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def encode(self) -> str:
        return ":".join((SCHEME, str(self.n), str(self.r), str(self.p), _b64(self.salt), _b64(self.key)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, n: int, r: int, p: int, salt: bytes) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=KEY_BYTES
    )


def hash_password(password: str, *, cost: tuple[int, int, int] = COST) -> str:
    """The stored form of `password` (ValueError for an empty or absurdly long one)."""
    if not password or len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password must have 1 to {MAX_PASSWORD_CHARS} characters")
    n, r, p = cost
    salt = secrets.token_bytes(SALT_BYTES)
    return PasswordHash(n, r, p, salt, _derive(password, n, r, p, salt)).encode()


def parse_hash(encoded: str) -> PasswordHash:
    """The parts of a stored hash; ValueError, saying what is wrong (never quoting it), otherwise."""
    parts = encoded.strip().split(":")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError(
            "is not a password hash like scrypt:16384:8:1:<salt>:<hash>; make one with "
            "`newsletter console hash-password`"
        )
    try:
        n, r, p = (int(part) for part in parts[1:4])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("has a cost, salt or hash that cannot be read") from None
    if not (2 <= n <= MAX_COST_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("has scrypt costs out of range (n a power of two up to 2^20, r 1-32, p 1-16)")
    if len(salt) < 8 or len(key) != KEY_BYTES:
        raise ValueError(f"needs a salt of at least 8 bytes and a {KEY_BYTES}-byte hash")
    return PasswordHash(n, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` is the one `encoded` was made from (constant time in the comparison)."""
    if not password or len(password) > MAX_PASSWORD_CHARS:
        return False
    stored = parse_hash(encoded)
    return hmac.compare_digest(_derive(password, stored.n, stored.r, stored.p, stored.salt), stored.key)
