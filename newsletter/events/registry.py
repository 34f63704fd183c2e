"""The providers whose webhooks the app receives: one line each, by the name in `/webhooks/<name>`."""

from __future__ import annotations

from newsletter.events.base import WebhookProvider
from newsletter.events.mailgun import MailgunWebhook
from newsletter.events.postmark import PostmarkWebhook
from newsletter.events.resend import ResendWebhook
from newsletter.events.sendgrid import SendGridWebhook

WEBHOOKS: dict[str, WebhookProvider] = {
    provider.name: provider
    for provider in (
        PostmarkWebhook(),
        ResendWebhook(),
        SendGridWebhook(),
        MailgunWebhook(),
    )
}
