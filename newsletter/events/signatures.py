"""Verifying (and, for the emulator and tests, making) each provider's webhook signature.

* Postmark signs nothing: its webhook URL carries HTTP basic-auth credentials.
* Resend signs with Svix: HMAC-SHA256 over `id.timestamp.body` with the secret after `whsec_`.
* SendGrid's signed event webhook: ECDSA P-256 over timestamp + raw body, the public key as base64 DER.
* Mailgun: hex HMAC-SHA256 of timestamp + token with the webhook signing key, inside the body.

Every check compares in constant time and refuses stale timestamps, so a captured request cannot be
replayed later; replays within the window are caught by the event store's uniqueness.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

TOLERANCE_SECONDS = 5 * 60


class SignatureError(Exception):
    """The request is not from the provider (or is too old); the message says which check failed."""


def _fresh(timestamp: str | int | float, now: float | None, tolerance: int) -> None:
    try:
        moment = float(timestamp)
    except (TypeError, ValueError) as exc:
        raise SignatureError("timestamp is not a number") from exc
    if abs((now or time.time()) - moment) > tolerance:
        raise SignatureError("timestamp is outside the accepted window")


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise SignatureError(f"missing {name} header")


# --- Postmark: basic auth -------------------------------------------------------------------------


def verify_basic_auth(headers: Mapping[str, str], user: str, password: str) -> None:
    try:
        scheme, _, encoded = _header(headers, "authorization").partition(" ")
        given = base64.b64decode(encoded, validate=True).decode()
    except (SignatureError, binascii.Error, UnicodeDecodeError) as exc:
        raise SignatureError("missing or malformed basic auth") from exc
    given_user, _, given_password = given.partition(":")
    ok_user = hmac.compare_digest(given_user.encode(), user.encode())
    ok_password = hmac.compare_digest(given_password.encode(), password.encode())
    if scheme.lower() != "basic" or not (ok_user and ok_password):
        raise SignatureError("wrong basic-auth credentials")


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- Resend: Svix ------------------------------------------------------------------------------------


def _svix_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise SignatureError("the configured Resend secret is not whsec_<base64>") from exc


def sign_svix(body: bytes, secret: str, message_id: str, timestamp: int) -> dict[str, str]:
    content = f"{message_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(_svix_key(secret), content, hashlib.sha256).digest()).decode()
    return {"svix-id": message_id, "svix-timestamp": str(timestamp), "svix-signature": f"v1,{signature}"}


def verify_svix(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Verify and return the svix-id (the event's id, the same across the provider's retries)."""
    message_id, timestamp = _header(headers, "svix-id"), _header(headers, "svix-timestamp")
    _fresh(timestamp, now, tolerance)
    expected = sign_svix(body, secret, message_id, int(timestamp))["svix-signature"].split(",", 1)[1]
    for candidate in _header(headers, "svix-signature").split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected.encode()):
            return message_id
    raise SignatureError("no valid v1 signature")


# --- SendGrid: ECDSA ----------------------------------------------------------------------------------

SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


def new_sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair: the private key (to sign, in tests and the emulator) and the public key as
    SendGrid shows it (base64 DER)."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def sign_sendgrid(body: bytes, private_key: ec.EllipticCurvePrivateKey, timestamp: int) -> dict[str, str]:
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SENDGRID_SIGNATURE: base64.b64encode(signature).decode(), SENDGRID_TIMESTAMP: str(timestamp)}


def verify_sendgrid(
    headers: Mapping[str, str],
    body: bytes,
    public_key_b64: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    signature, timestamp = _header(headers, SENDGRID_SIGNATURE), _header(headers, SENDGRID_TIMESTAMP)
    _fresh(timestamp, now, tolerance)
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(signature), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError, TypeError) as exc:
        raise SignatureError("ECDSA signature does not verify") from exc


# --- Mailgun: HMAC in the body ------------------------------------------------------------------------


def sign_mailgun(signing_key: str, timestamp: int, token: str) -> dict[str, str]:
    digest = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": str(timestamp), "token": token, "signature": digest}


def verify_mailgun(
    signature: Mapping[str, str],
    signing_key: str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Verify the body's `signature` object and return its token (unique per request)."""
    try:
        timestamp, token, given = (
            str(signature["timestamp"]),
            str(signature["token"]),
            str(signature["signature"]),
        )
    except (KeyError, TypeError) as exc:
        raise SignatureError("missing signature fields") from exc
    _fresh(timestamp, now, tolerance)
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureError("HMAC does not match")
    return token
