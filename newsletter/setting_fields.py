"""What can be configured: every setting the product reads, with its type, bounds, default and
description. The descriptions double as the README's configuration table (a test holds them to it).

Declarations only: how each value is checked beyond its type and bounds, and what the settings
derive from it, is `newsletter.config`, whose `Settings` is the class to use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SUNSET_MAX_ISSUES = 26  # half a year of weekly issues: the longest silence worth a question
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


class SettingFields(BaseSettings):
    """The product's configuration, as declared. Field docs double as the README's configuration table."""

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
        5,
        ge=1,
        le=20,
        description="Tries per batch on retryable errors; a batch that fails them all stops the send.",
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
    welcome: bool = Field(
        True, description="Send one welcome email when a reader confirms (at most once a year per reader)."
    )
    sunset_issues: int = Field(
        0,
        ge=0,
        le=SUNSET_MAX_ISSUES,
        description="Ask readers with no human click and no vote in the last N issues whether they still "
        "want it, and unsubscribe those who do not answer in 14 days (0: off; else 2 or more).",
    )
    sunset_cron: str = Field(
        "0 11 * * *",
        description="When the re-engagement job asks silent readers and lets go unanswered ones.",
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
