"""Endpoint secrets and the signature, as the Standard Webhooks specification says.

A secret is 32 random bytes, shown to the operator once as `whsec_<base64>`. It is kept in the store
encrypted (AES-GCM) under a key derived from NEWSLETTER_SECRET_KEY, so a copy of the store (a backup,
`db copy`) holds nothing that signs; a changed NEWSLETTER_SECRET_KEY makes the old secrets unreadable,
and `newsletter webhooks rotate ID` gives the endpoint a new one.

The signature is ours (a few lines of HMAC, no dependency at run time); the tests verify every
delivery with the reference implementation (`standardwebhooks`), so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec: between 24 and 64
_STORED_PREFIX = "v1:"
_KEY_INFO = b"newsletter outgoing webhook endpoint secret v1"


class SecretUnreadable(RuntimeError):
    """The stored secret does not decrypt under this NEWSLETTER_SECRET_KEY (the key changed)."""


def new_secret() -> str:
    """A fresh endpoint secret in the spec's serialisation, `whsec_<base64>`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def _key(signing_key: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(signing_key)


def seal(secret: str, signing_key: bytes) -> str:
    """The secret as stored: `v1:` and base64 of nonce + AES-GCM ciphertext."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(signing_key)).encrypt(nonce, secret.encode(), None)
    return _STORED_PREFIX + base64.b64encode(nonce + sealed).decode()


def unseal(stored: str, signing_key: bytes) -> str:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        raw = base64.b64decode(stored.removeprefix(_STORED_PREFIX), validate=True)
        return AESGCM(_key(signing_key)).decrypt(raw[:12], raw[12:], None).decode()
    except (InvalidTag, ValueError) as exc:
        raise SecretUnreadable(
            "the endpoint's secret cannot be read with this NEWSLETTER_SECRET_KEY (was the key changed?); "
            "give it a new one with `newsletter webhooks rotate ID`"
        ) from exc


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, the value of `webhook-signature`."""
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def new_message_id() -> str:
    """A `webhook-id`: unique per event, kept on every retry; no `.` (the signed content uses it)."""
    return "msg_" + secrets.token_urlsafe(18)
