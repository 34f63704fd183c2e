"""Provider adapters: one module per provider, one interface (`base.Provider`)."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.providers.base import Provider, ProviderError, SendResult
from newsletter.providers.outbox import OutboxProvider

__all__ = ["OutboxProvider", "Provider", "ProviderError", "SendResult", "make_provider"]


def make_provider(settings: Settings) -> Provider:
    """The provider named by NEWSLETTER_PROVIDER, configured from the environment."""
    if settings.provider == "outbox":
        return OutboxProvider(settings.outbox_dir)
    raise ValueError(f"unknown provider {settings.provider!r}")
