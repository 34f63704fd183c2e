"""Provider adapters: one module per provider, one interface (`base.Provider`)."""

from __future__ import annotations

from newsletter.config import ConfigError, Settings
from newsletter.providers.base import Failure, Provider, ProviderError, ReconcileUnsupported, SendResult
from newsletter.providers.outbox import OutboxProvider

__all__ = [
    "Failure",
    "OutboxProvider",
    "Provider",
    "ProviderError",
    "ReconcileUnsupported",
    "SendResult",
    "make_provider",
]

CREDENTIALS = {
    "postmark": ("postmark_server_token", "POSTMARK_SERVER_TOKEN"),
    "resend": ("resend_api_key", "RESEND_API_KEY"),
    "sendgrid": ("sendgrid_api_key", "SENDGRID_API_KEY"),
    "mailgun": ("mailgun_api_key", "MAILGUN_API_KEY"),
    "smtp": ("smtp_url", "NEWSLETTER_SMTP_URL"),
}


def make_provider(settings: Settings) -> Provider:
    """The provider named by NEWSLETTER_PROVIDER, configured from the environment."""
    name = settings.provider
    if name == "outbox":
        return OutboxProvider(settings.outbox_dir)
    field, variable = CREDENTIALS[name]
    secret = getattr(settings, field)
    if not secret:
        raise ConfigError(f"NEWSLETTER_PROVIDER={name} needs {variable} in the environment")
    common = {
        "base_url": settings.api_base_url,
        "timeout": settings.send_timeout,
        "concurrency": settings.send_concurrency,
    }
    if name == "postmark":
        from newsletter.providers.postmark import PostmarkProvider

        return PostmarkProvider(secret, message_stream=settings.postmark_stream, **common)
    if name == "resend":
        from newsletter.providers.resend import ResendProvider

        return ResendProvider(secret, **common)
    if name == "sendgrid":
        from newsletter.providers.sendgrid import SendGridProvider

        return SendGridProvider(secret, **common)
    if name == "mailgun":
        from newsletter.providers.mailgun import MailgunProvider

        if not settings.mailgun_domain:
            raise ConfigError("NEWSLETTER_PROVIDER=mailgun needs MAILGUN_DOMAIN in the environment")
        return MailgunProvider(secret, settings.mailgun_domain, **common)
    from newsletter.providers.smtp import SmtpProvider

    try:
        return SmtpProvider(secret, timeout=settings.send_timeout)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
