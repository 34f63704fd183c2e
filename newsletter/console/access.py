"""Who may use the console: the editor's credentials, their login session, and the rules that
decide when a login is needed at all.

Bound to a loopback address without credentials, the console is one person's local tool and needs
no login. Bound to any other address it refuses to start unless credentials are configured
(`NEWSLETTER_EDITOR_PASSWORD_HASH` and/or `NEWSLETTER_EDITOR_TOKEN`); once they are, every page
needs a login, whatever the address.

A session is a signed cookie: the editor's name, an expiry and a random id, with an HMAC under a
key derived from the site's signing key *and* the credentials, so changing the password or the
token ends every session. Logging out forgets the id for the rest of its life (in this process).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import threading
import time
from dataclasses import dataclass

from newsletter.config import ConfigError, Settings
from newsletter.passwords import verify_password

SESSION_COOKIE = "nl_console_session"
SESSION_LABEL = b"newsletter/console/session/v1"
_SESSION_SHAPE = re.compile(r"([A-Za-z0-9_-]{1,120})\.([0-9]{1,12})\.([A-Za-z0-9_-]{16})\.([0-9a-f]{40})")
MAX_REVOKED = 10_000


def is_loopback_host(host: str) -> bool:
    """Whether binding `host` keeps the console on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(settings: Settings, host: str) -> None:
    """Refuse (ConfigError) to serve the console beyond this machine without editor credentials."""
    if not is_loopback_host(host) and not settings.editor_credentials:
        raise ConfigError(
            f"the console would listen on {host} without a login: set NEWSLETTER_EDITOR_PASSWORD_HASH "
            "(make one with `newsletter console hash-password`) or NEWSLETTER_EDITOR_TOKEN, and serve it "
            "behind TLS; or bind 127.0.0.1 and reach it through an SSH tunnel"
        )


@dataclass(frozen=True)
class Editor:
    """Who is at the console, and how they got in (`local`, `password`, `token`)."""

    name: str
    via: str


class Credentials:
    """The configured editor's name, password hash and token, and their check."""

    def __init__(self, settings: Settings):
        self.name = settings.editor_name
        self.password_hash = settings.editor_password_hash
        self.token = settings.editor_token

    @property
    def required(self) -> bool:
        return bool(self.password_hash or self.token)

    def fingerprint(self) -> bytes:
        """Moves whenever a credential changes: sessions made under the old ones stop working."""
        material = f"{self.name}\x00{self.password_hash or ''}\x00{self.token or ''}"
        return hashlib.sha256(material.encode()).digest()

    def login(self, name: str, secret: str) -> Editor | None:
        """The editor, if `name` is theirs and `secret` is their password or their token."""
        name_ok = hmac.compare_digest(name.strip().encode(), self.name.encode())
        if self.token and hmac.compare_digest(secret.encode(), self.token.encode()):
            return Editor(self.name, "token") if name_ok else None
        if self.password_hash and verify_password(secret, self.password_hash):
            return Editor(self.name, "password") if name_ok else None
        return None

    def bearer(self, authorization: str | None) -> Editor | None:
        """The editor for an `Authorization: Bearer <token>` header carrying their token."""
        if not (self.token and authorization and authorization[:7].lower() == "bearer "):
            return None
        given = authorization[7:].strip().encode()
        return Editor(self.name, "token") if hmac.compare_digest(given, self.token.encode()) else None


class Sessions:
    """Signed, expiring session cookies (see the module's docstring)."""

    def __init__(self, key: bytes, credentials: Credentials, hours: float):
        label = SESSION_LABEL + b"\x00" + key
        self._key = hmac.new(label, credentials.fingerprint(), hashlib.sha256).digest()
        self.seconds = int(hours * 3600)
        self._revoked: dict[str, int] = {}
        self._lock = threading.Lock()

    def make(self, editor: Editor, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.seconds)
        name = base64.urlsafe_b64encode(editor.name.encode()).decode().rstrip("=")
        nonce = secrets.token_urlsafe(12)
        return f"{name}.{expires}.{nonce}.{self._mac(name, expires, nonce)}"

    def read(self, value: str | None, now: float | None = None) -> Editor | None:
        """The editor of a valid, unexpired, not revoked session cookie; None for anything else."""
        match = _SESSION_SHAPE.fullmatch(value or "")
        if not match:
            return None
        name, expires_text, nonce, mac = match.groups()
        expires = int(expires_text)
        if expires < (now or time.time()) or not hmac.compare_digest(mac, self._mac(name, expires, nonce)):
            return None
        with self._lock:
            if nonce in self._revoked:
                return None
        try:
            decoded = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return Editor(decoded, "session")

    def revoke(self, value: str | None, now: float | None = None) -> None:
        """Forget a session (logout) until it would have expired anyway."""
        match = _SESSION_SHAPE.fullmatch(value or "")
        if not match or self.read(value, now) is None:
            return
        now = now or time.time()
        with self._lock:
            self._revoked = {n: e for n, e in self._revoked.items() if e >= now}
            if len(self._revoked) < MAX_REVOKED:
                self._revoked[match[3]] = int(match[2])

    def _mac(self, name: str, expires: int, nonce: str) -> str:
        return hmac.new(self._key, f"{name}|{expires}|{nonce}".encode(), hashlib.sha256).hexdigest()[:40]
