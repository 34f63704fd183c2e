"""One Settings object: every environment variable the product reads, declared and documented in
`newsletter.setting_fields`, checked here.

Values come from the environment, then from an optional `.env` file in the working directory, then from
the declared defaults, which are the embedded default: a SQLite file and a local outbox, no accounts.

Every value is checked when the settings are read (`Settings()`), and the paths they name by
`check_paths()`: a bad one stops the command with the variable's name and the reason. Error messages
never quote a value (`hide_input_in_errors`): a mistyped secret must not end up in a log.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationInfo, field_validator

from newsletter.headers import HeaderValueError, check_header_value, normalise_email, parse_from_address
from newsletter.key_strength import weakness
from newsletter.local_secret import read_or_create
from newsletter.locations import directory_problem, file_problem
from newsletter.passwords import parse_hash
from newsletter.redaction import environment_secrets, url_secrets
from newsletter.setting_fields import SECRET_FIELDS, SettingFields
from newsletter.smtp_url import parse_smtp_url
from newsletter.store_urls import is_sqlite, parse_database_url, sqlite_location_problem, sqlite_path
from newsletter.text_rules import https_url_problem

MIN_SECRET_LENGTH = 32
SUNSET_GRACE_DAYS = 14  # how long a reader asked "still want it?" has to answer
MAX_SETTING_CHARS = 4096  # no setting needs more; a bigger value is a mistake (a file's contents?)
KEY_ADVICE = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
# Settings that go into HTTP headers, URLs or signatures as one token: no spaces, no line breaks.
TOKEN_FIELDS = (*SECRET_FIELDS, "postmark_webhook_user", "sendgrid_webhook_public_key")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029\ud800-\udfff]")  # surrogates: not UTF-8
ENV_FILE = Path(".env")
MAX_ENV_FILE_BYTES = 1024 * 1024
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class Settings(SettingFields):
    """The settings as read: each value checked beyond its type when read (`Settings()`), the paths by
    `check_paths()`, and what the product derives from them."""

    @field_validator("*", mode="before")
    @classmethod
    def _one_bounded_line(cls, value: object) -> object:
        """Every setting is one line of bounded length: a stray newline or a pasted file is a mistake."""
        if isinstance(value, str):
            if len(value) > MAX_SETTING_CHARS:
                raise ValueError(f"is longer than {MAX_SETTING_CHARS} characters")
            if found := _CONTROL.search(value):
                if "\ud800" <= found[0] <= "\udfff":
                    raise ValueError("is not UTF-8 text (the environment holds bytes no UTF-8 text has)")
                raise ValueError("must be a single line without control characters (a trailing newline?)")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        return parse_database_url(value)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            parse_smtp_url(value)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("NEWSLETTER_SMTP_URL ")) from None
        return value

    @field_validator(*TOKEN_FIELDS)
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value and any(character.isspace() for character in value):
            raise ValueError("must be one word, without spaces")
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _strong_in_production(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("env") == "production" and (reason := weakness(value)):
            raise ValueError(f"too weak for production: {reason}; {KEY_ADVICE}")
        return value

    @field_validator("outbox_dir", "secret_file", mode="before")
    @classmethod
    def _path_given(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a path")
        return value

    @field_validator("api_base_url", "preview_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?(/\S*)?", value):
            raise ValueError("must be an absolute http:// or https:// URL like http://127.0.0.1:8025")
        return value.rstrip("/")

    @field_validator("mailgun_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value and not _HOST_NAME.fullmatch(value):
            raise ValueError("is not a domain name like mg.example.com")
        return value or None

    @field_validator("postmark_stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", value):
            raise ValueError("is not a Postmark message stream ID (letters, digits, - and _)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        entries = [part.strip() for part in value.split(",") if part.strip()]
        if entries == ["*"]:
            return value
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry[:60]!r} is not an IP address or network; use addresses like 127.0.0.1, "
                    "networks like 10.0.0.0/8, or * alone"
                ) from None
        return value

    @field_validator("site_url")
    @classmethod
    def _https_site(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.startswith("https://"):
            raise ValueError("must be an absolute https:// URL (mail clients and spam filters expect https)")
        if problem := https_url_problem(value, site=True):
            raise ValueError(f"is not a base URL like https://verdicts.example.com: it {problem}")
        return value

    @field_validator("editor_name")
    @classmethod
    def _editor_name(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.@+-]{1,60}", value):
            raise ValueError("must be 1 to 60 letters, digits or . @ + - _ (a login name)")
        return value

    @field_validator("editor_password_hash")
    @classmethod
    def _password_hash(cls, value: str | None) -> str | None:
        if value:
            parse_hash(value)
        return value or None

    @field_validator("editor_token")
    @classmethod
    def _editor_token(cls, value: str | None) -> str | None:
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters long; {KEY_ADVICE}")
        return value or None

    @field_validator("console_hosts")
    @classmethod
    def _console_hosts(cls, value: str) -> str:
        for host in _split(value):
            if not (_HOST_NAME.fullmatch(host) or host == "localhost"):
                raise ValueError(f"{host[:60]!r} is not a host name like console.example.com")
        return value

    @field_validator("signup_rate_per_client", "signup_rate_per_address", "console_login_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("embed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in _split(value):
            if not re.fullmatch(r"https://[A-Za-z0-9.-]+(:\d+)?", origin):
                raise ValueError(f"{origin!r} is not an origin like https://example.com")
        return value

    @field_validator("allowed_link_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for host in _split(value):
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name like docs.example.com")
        return value

    @field_validator(
        "compose_cron",
        "send_cron",
        "retry_cron",
        "purge_cron",
        "resume_cron",
        "retention_cron",
        "sunset_cron",
    )
    @classmethod
    def _crontab(cls, value: str) -> str:
        # APScheduler loads only where a crontab is set: a default one is valid (tests/test_config.py),
        # and most commands never schedule (issue 16: start-up).
        from newsletter.crontab import parse_cron

        parse_cron(value, ZoneInfo("UTC"))
        return value

    @field_validator("sunset_issues")
    @classmethod
    def _sunset_span(cls, value: int, info: ValidationInfo) -> int:
        """0, or a span of 2+ issues whose clicks are still kept per reader: folded hits name nobody,
        so the N weekly issues and the 14 days of the question must fit in the hit retention."""
        if value == 1:
            raise ValueError("must be 0 (off) or at least 2: one silent issue says nothing about a reader")
        retention = info.data.get("hit_retention_days")
        needed = value * 7 + SUNSET_GRACE_DAYS
        if value and retention is not None and retention < needed:
            raise ValueError(
                f"{value} weekly issues and {SUNSET_GRACE_DAYS} days to answer look back {needed} days, "
                f"longer than NEWSLETTER_HIT_RETENTION_DAYS ({retention}) keeps each reader's clicks; raise "
                "that or lower this"
            )
        return value

    @field_validator("editor_emails")
    @classmethod
    def _editors(cls, value: str) -> str:
        for address in _split(value):
            try:
                normalise_email(address)
            except HeaderValueError as exc:
                raise ValueError(f"{address!r}: {exc}") from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from exc
        return value

    @field_validator("from_address")
    @classmethod
    def _valid_from(cls, value: str) -> str:
        try:
            parse_from_address(value)
        except HeaderValueError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("name", "postal_address")
    @classmethod
    def _single_line(cls, value: str) -> str:
        try:
            return check_header_value(value, max_length=300)
        except HeaderValueError as exc:
            raise ValueError(str(exc)) from exc

    def check_paths(self) -> None:
        """Refuse (ConfigError, naming the variable) a path the settings will use that cannot work.

        One rule for every path setting: the product creates the file or directory a setting names
        (the store, the secret file, the outbox), never a missing directory above it, which is
        usually a typo. Nothing is created here.
        """
        store = sqlite_path(self.database_url)
        if store is not None and (problem := sqlite_location_problem(store)):
            raise ConfigError(f"NEWSLETTER_DATABASE_URL: {problem}")
        if self.provider == "outbox" and (problem := directory_problem(self.outbox_dir)):
            raise ConfigError(f"NEWSLETTER_OUTBOX_DIR: {problem}")
        if not self.secret_key and self.env != "production" and (problem := file_problem(self.secret_file)):
            raise ConfigError(f"NEWSLETTER_SECRET_FILE: {problem}")

    def secret_values(self) -> set[str]:
        """Every credential these settings hold, to be masked in any message that might quote one."""
        values = {getattr(self, name) for name in SECRET_FIELDS}
        for url in (self.database_url, self.smtp_url):
            values |= url_secrets(url)
        return {value for value in values if value}

    @property
    def sends_through_workers(self) -> bool:
        """Whether the scheduler only marks an issue for sending and leaves it to the workers."""
        if self.send_mode == "auto":
            return not is_sqlite(self.database_url)
        return self.send_mode == "workers"

    @property
    def editor_email_list(self) -> list[str]:
        return [normalise_email(address) for address in _split(self.editor_emails)]

    @property
    def link_hosts(self) -> frozenset[str]:
        """Hosts an issue's links may point to: the site's own and the allowed ones, lower-cased."""
        return frozenset({self.site_host.lower(), *(h.lower() for h in _split(self.allowed_link_hosts))})

    @property
    def editor_credentials(self) -> bool:
        """Whether the console has credentials: then every page of it needs a login."""
        return bool(self.editor_password_hash or self.editor_token)

    @property
    def console_host_list(self) -> list[str]:
        return [host.lower() for host in _split(self.console_hosts)]

    @property
    def embed_origin_set(self) -> frozenset[str]:
        return frozenset(_split(self.embed_origins))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def site_host(self) -> str:
        return self.site_url.removeprefix("https://").split("/", 1)[0]

    def signing_key(self) -> bytes:
        """The key for signed links: explicit in production, generated once and persisted locally."""
        if self.secret_key:
            if len(self.secret_key) < MIN_SECRET_LENGTH:
                raise ConfigError(
                    f"NEWSLETTER_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters long"
                )
            if self.env == "production" and (reason := weakness(self.secret_key)):
                raise ConfigError(f"NEWSLETTER_SECRET_KEY is too weak for production: {reason}; {KEY_ADVICE}")
            return self.secret_key.encode()
        if self.env == "production":
            raise ConfigError(
                "NEWSLETTER_SECRET_KEY is not set. In production the key that signs reader links must come "
                f"from the environment; {KEY_ADVICE}"
            )
        return _local_secret(self.secret_file).encode()


RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(text: str) -> tuple[int, int]:
    """`20/hour` -> (20, 3600): at most COUNT events per window of seconds."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(second|minute|hour|day)\s*", text)
    if not match or int(match[1]) < 1:
        raise ValueError(f"{text!r} is not a rate like 20/hour (second, minute, hour or day)")
    return int(match[1]), RATE_UNITS[match[2]]


def _split(value: str) -> list[str]:
    return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]


def _local_secret(path: Path) -> str:
    """Read the generated local key, creating it (0600, atomically) on first use, in a directory that
    must exist (see `Settings.check_paths`). Errors name the file, never its contents. A path that
    is not a regular file (`/dev/null`, a pipe) is refused: it would give a new key every run, or
    never answer."""
    if problem := file_problem(path):
        raise ConfigError(f"NEWSLETTER_SECRET_FILE: {problem}")
    try:
        return read_or_create(path, MIN_SECRET_LENGTH)
    except ValueError as exc:  # UnicodeDecodeError among them: never quote the contents
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ConfigError(f"NEWSLETTER_SECRET_FILE: {path} is not a key file ({reason})") from None
    except OSError as exc:
        problem = file_problem(path) or f"cannot use {path}: {exc.strerror or exc}"
        raise ConfigError(f"NEWSLETTER_SECRET_FILE: {problem}") from None


def check_env_file(path: Path = ENV_FILE) -> None:
    """Refuse (ConfigError, naming the file and the line) a `.env` the settings cannot read: larger
    than MAX_ENV_FILE_BYTES, unreadable, or not UTF-8 text. Called before the settings are read,
    which would otherwise fail deep inside with a decoding error. A `.env` that is not a regular file
    is not read at all (as pydantic-settings does)."""
    try:
        if not path.is_file():
            return
        if path.stat().st_size > MAX_ENV_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_ENV_FILE_BYTES:,} bytes; is it a settings file?")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for number, line in enumerate(data.splitlines(), 1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte, column = line[exc.start], exc.start + 1
            raise ConfigError(
                f"{path}: line {number} is not UTF-8 text (byte 0x{byte:02x} at column {column})"
            ) from None


def variable_name(field: str) -> str:
    """The environment variable of a settings field: NEWSLETTER_<FIELD>, or its alias."""
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"NEWSLETTER_{field.upper()}"


def secrets_in_environment() -> set[str]:
    """The credentials the environment would give the settings, without reading (validating) them."""
    return environment_secrets(
        [variable_name(name) for name in SECRET_FIELDS], ["NEWSLETTER_DATABASE_URL", "NEWSLETTER_SMTP_URL"]
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
