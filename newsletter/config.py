"""One Settings object: every environment variable the product reads is declared and documented here.

Values come from the environment, then from an optional `.env` file in the working directory, then from
the defaults below, which are the embedded default: a SQLite file and a local outbox, no accounts.

Every value is checked when the settings are read (`Settings()`), and the paths they name by
`check_paths()`: a bad one stops the command with the variable's name and the reason. Error messages
never quote a value (`hide_input_in_errors`): a mistyped secret must not end up in a log.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.crontab import parse_cron
from newsletter.db import is_sqlite, parse_database_url, sqlite_location_problem, sqlite_path
from newsletter.headers import HeaderValueError, check_header_value, normalise_email, parse_from_address
from newsletter.key_strength import weakness
from newsletter.local_secret import read_or_create
from newsletter.locations import directory_problem, file_problem
from newsletter.passwords import parse_hash
from newsletter.redaction import environment_secrets, url_secrets
from newsletter.smtp_url import parse_smtp_url

MIN_SECRET_LENGTH = 32
MAX_SETTING_CHARS = 4096  # no setting needs more; a bigger value is a mistake (a file's contents?)
KEY_ADVICE = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
# Settings whose values are credentials: never shown, and masked in any message that might quote them.
SECRET_FIELDS = (
    "secret_key",
    "postmark_server_token",
    "resend_api_key",
    "sendgrid_api_key",
    "mailgun_api_key",
    "postmark_webhook_password",
    "resend_webhook_secret",
    "mailgun_webhook_signing_key",
    "editor_password_hash",
    "editor_token",
)
# Settings that go into HTTP headers, URLs or signatures as one token: no spaces, no line breaks.
TOKEN_FIELDS = (*SECRET_FIELDS, "postmark_webhook_user", "sendgrid_webhook_public_key")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


class Settings(BaseSettings):
    """The product's configuration. Field docs double as the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
        allow_inf_nan=False,
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses to start without an explicit, strong secret key."
    )
    database_url: str = Field(
        "sqlite:///subscribers.db",
        description="The store: sqlite:///path (its directory must exist) or postgresql+psycopg://...",
    )
    provider: Literal["outbox", "smtp", "postmark", "resend", "sendgrid", "mailgun"] = Field(
        "outbox", description="Where messages go: `outbox` writes .eml files; the others are real services."
    )
    outbox_dir: Path = Field(Path("outbox"), description="Directory of the outbox provider's .eml files.")
    site_url: str = Field(
        "https://verdicts.example.com",
        description="Public https base URL of the site: comparison pages and reader links point here.",
    )
    from_address: str = Field(
        "Weekly AI Tool Verdicts <issue@verdicts.example.com>",
        validation_alias="NEWSLETTER_FROM",
        description="The From header of every message.",
    )
    name: str = Field("Weekly AI Tool Verdicts", description="The newsletter's name, shown in every issue.")
    postal_address: str = Field(
        "Weekly AI Tool Verdicts, 1 Example Street, 10115 Berlin, Germany",
        description="Postal line in every footer (CAN-SPAM and friends ask for one).",
    )
    secret_key: str | None = Field(
        None, description="Signs reader links. Required in production; generated and kept in a file locally."
    )
    secret_file: Path = Field(
        Path(".newsletter-secret"), description="Where the generated local secret key is kept (mode 0600)."
    )
    timezone: str = Field("UTC", description="IANA zone for weeks and schedules, e.g. Europe/Berlin.")
    issue_size: int = Field(3, ge=1, le=20, description="At most this many comparisons per issue.")
    scorecard: Literal["full", "excerpt"] = Field(
        "full",
        description="The reviewer quotes in an issue: `full`, or each quote's first sentence and a link to "
        "the full scorecard on the site (for long issues near Gmail's clipping size).",
    )
    link_token_days: int = Field(
        120,
        ge=1,
        le=3650,
        description="How long the signed links in an issue (unsubscribe, vote) stay valid.",
    )
    send_batch_size: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Deliveries per provider request; default: what suits the provider.",
    )
    promise: str = Field(
        "New AI tools ship daily. We compare them before you waste an afternoon.",
        description="The one-line promise on the signup page.",
    )
    confirm_token_days: int = Field(7, ge=1, le=90, description="How long a confirmation link stays valid.")
    signup_rate_per_client: str = Field(
        "20/hour", description="Signups one client address may make, as COUNT/second|minute|hour|day."
    )
    signup_rate_per_address: str = Field(
        "3/hour", description="Confirmation emails one address may be sent, as COUNT/second|minute|hour|day."
    )
    embed_origins: str = Field(
        "", description="Comma-separated https origins whose pages may post the signup form (the embed)."
    )
    allowed_link_hosts: str = Field(
        "",
        description="Comma-separated hosts an issue may link to besides the site's own (the link gate).",
    )
    trusted_proxies: str = Field(
        "127.0.0.1", description="Proxy addresses whose X-Forwarded-For is believed (comma-separated, or *)."
    )
    max_body_bytes: int = Field(
        16_384, ge=1024, le=10_000_000, description="Largest request body the app reads."
    )
    api_base_url: str | None = Field(
        None, description="Send to this base URL instead of the provider's own (a local emulator, staging)."
    )
    smtp_url: str | None = Field(
        None, description="smtp://host:port, smtp+starttls://... or smtps://... (user:password@ allowed)."
    )
    postmark_server_token: str | None = Field(
        None, validation_alias="POSTMARK_SERVER_TOKEN", description="Postmark server API token."
    )
    postmark_stream: str = Field(
        "broadcast", description="Postmark message stream for issues (a broadcast one)."
    )
    resend_api_key: str | None = Field(None, validation_alias="RESEND_API_KEY", description="Resend API key.")
    sendgrid_api_key: str | None = Field(
        None, validation_alias="SENDGRID_API_KEY", description="SendGrid API key."
    )
    mailgun_api_key: str | None = Field(
        None, validation_alias="MAILGUN_API_KEY", description="Mailgun API key."
    )
    mailgun_domain: str | None = Field(
        None, validation_alias="MAILGUN_DOMAIN", description="Mailgun sending domain."
    )
    send_concurrency: int = Field(
        4, ge=1, le=64, description="Provider requests in flight at once during a send."
    )
    send_rate: float = Field(
        0,
        ge=0,
        le=1_000_000,
        description="At most this many messages per second (0: no limit), for plans that cap it.",
    )
    send_max_attempts: int = Field(
        5, ge=1, le=20, description="Tries per batch on retryable errors before its rows are marked failed."
    )
    send_timeout: float = Field(60, gt=0, le=600, description="Seconds to wait for a provider's answer.")
    unknown_outcome: Literal["resend", "assume-sent"] = Field(
        "resend",
        description="For providers that cannot be asked afterwards (SendGrid, SMTP): whether an interrupted "
        "request's rows are sent again or taken as sent.",
    )
    send_mode: Literal["auto", "inline", "workers"] = Field(
        "auto",
        description="Who sends a scheduled issue: the scheduler itself (`inline`) or `newsletter worker` "
        "processes (`workers`); `auto` is inline on SQLite and workers on any other database.",
    )
    worker_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="How often an idle sender worker looks for an issue marked for sending."
    )
    postmark_webhook_user: str | None = Field(None, description="Basic-auth user in Postmark's webhook URL.")
    postmark_webhook_password: str | None = Field(
        None, description="Basic-auth password in Postmark's webhook URL."
    )
    resend_webhook_secret: str | None = Field(
        None, validation_alias="RESEND_WEBHOOK_SECRET", description="Resend (Svix) signing secret, whsec_..."
    )
    sendgrid_webhook_public_key: str | None = Field(
        None,
        validation_alias="SENDGRID_WEBHOOK_PUBLIC_KEY",
        description="SendGrid signed event webhook public key.",
    )
    compose_cron: str = Field(
        "0 12 * * 5", description="When the week's draft is composed (crontab, local time)."
    )
    send_cron: str = Field("0 9 * * 1", description="When the approved issue is sent (crontab, local time).")
    retry_cron: str = Field("30 * * * *", description="When failed deliveries of recent sends are retried.")
    purge_cron: str = Field("15 3 * * *", description="When signups never confirmed in time are deleted.")
    resume_cron: str = Field(
        "*/10 * * * *", description="When sends interrupted by a stop or crash are resumed."
    )
    send_grace_hours: float = Field(
        6, ge=0, le=168, description="A send run missed by longer than this is not made up for (stale news)."
    )
    resume_hours: float = Field(
        48, ge=0, le=24 * 366, description="An interrupted send older than this is left to an editor."
    )
    tracking: Literal["off", "clicks", "clicks+opens"] = Field(
        "clicks",
        description="First-party tracking: `off` (no link rewritten, no hit stored), `clicks` (content links "
        "go through /r/), `clicks+opens` (and an open pixel).",
    )
    machine_window_seconds: float = Field(
        60,
        ge=0,
        le=86_400,
        description="A hit this soon after delivery is a machine's (link scanners fetch on arrival); 0: off.",
    )
    burst_links: int = Field(
        3,
        ge=2,
        le=100,
        description="This many different links of one reader within NEWSLETTER_BURST_SECONDS "
        "are a machine's.",
    )
    burst_seconds: float = Field(2, gt=0, le=600, description="The window of the burst rule, in seconds.")
    decoy_seconds: float = Field(
        10,
        ge=0,
        le=600,
        description="A reader's hits this close to a hit on the hidden link are a machine's.",
    )
    hit_retention_days: int = Field(
        90, ge=1, le=3650, description="Raw hits older than this are folded into per-link counts and deleted."
    )
    retention_cron: str = Field(
        "45 3 * * *", description="When hits past NEWSLETTER_HIT_RETENTION_DAYS are folded into counts."
    )
    webhook_timeout: float = Field(
        10, gt=0, le=60, description="Seconds an outgoing webhook's receiver has to answer."
    )
    webhook_interval_seconds: float = Field(
        5,
        ge=1,
        le=3600,
        description="How often the scheduler and the sender workers deliver the outgoing webhooks due.",
    )
    webhook_disable_hours: float = Field(
        24, gt=0, le=24 * 30, description="An endpoint failing this long without a success is disabled."
    )
    webhook_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Delivered and given-up webhook messages and their attempts are kept this long.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of long-running processes."
    )
    auto_approve: bool = Field(
        False, description="Approve each composed draft at once (no editor in the loop)."
    )
    editor_emails: str = Field(
        "", description="Comma-separated editors to email when an issue is not approved at send time."
    )
    preview_url: str = Field(
        "http://127.0.0.1:8001",
        description="Base URL of the editors' preview (`newsletter preview`), for alerts.",
    )
    mailgun_webhook_signing_key: str | None = Field(
        None, validation_alias="MAILGUN_WEBHOOK_SIGNING_KEY", description="Mailgun webhook signing key."
    )
    editor_name: str = Field(
        "editor",
        description="The editor's name: the login name when credentials are set, and who the console's "
        "changes are recorded as.",
    )
    editor_password_hash: str | None = Field(
        None, description="The editor's console password as scrypt:... (`newsletter console hash-password`)."
    )
    editor_token: str | None = Field(
        None,
        description="A long random token that logs the editor in instead of the password (or as Bearer).",
    )
    console_hosts: str = Field(
        "", description="Comma-separated host names the console answers besides its own address (a proxy's)."
    )
    console_session_hours: float = Field(
        12, gt=0, le=24 * 30, description="How long an editor's console login lasts."
    )
    console_login_rate: str = Field(
        "10/minute", description="Login attempts one client may make, as COUNT/second|minute|hour|day."
    )
    debug: bool = Field(
        False, description="Show the traceback of an unexpected error (for a bug report) instead of one line."
    )

    @field_validator("*", mode="before")
    @classmethod
    def _one_bounded_line(cls, value: object) -> object:
        """Every setting is one line of bounded length: a stray newline or a pasted file is a mistake."""
        if isinstance(value, str):
            if len(value) > MAX_SETTING_CHARS:
                raise ValueError(f"is longer than {MAX_SETTING_CHARS} characters")
            if _CONTROL.search(value):
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
        if not value.startswith("https://") or len(value) <= len("https://"):
            raise ValueError("must be an absolute https:// URL (mail clients and spam filters expect https)")
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

    @field_validator("compose_cron", "send_cron", "retry_cron", "purge_cron", "resume_cron", "retention_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        parse_cron(value, ZoneInfo("UTC"))
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
    must exist (see `Settings.check_paths`). Errors name the file, never its contents."""
    try:
        return read_or_create(path, MIN_SECRET_LENGTH)
    except ValueError as exc:  # UnicodeDecodeError among them: never quote the contents
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ConfigError(f"NEWSLETTER_SECRET_FILE: {path} is not a key file ({reason})") from None
    except OSError as exc:
        problem = file_problem(path) or f"cannot use {path}: {exc.strerror or exc}"
        raise ConfigError(f"NEWSLETTER_SECRET_FILE: {problem}") from None


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
