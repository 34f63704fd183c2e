"""One compiled email, many readers: the per-reader step, kept to a token and a few string joins."""

from __future__ import annotations

from email.utils import formataddr

from newsletter import links
from newsletter.config import Settings
from newsletter.headers import parse_from_address
from newsletter.mail import OutgoingMessage, make_message_id
from newsletter.render import RenderedMessage
from newsletter.tokens import Signer

READER_PURPOSE = "reader"


class IssueMailer:
    """Builds each reader's message from one RenderedMessage; nothing here compiles a template."""

    def __init__(self, rendered: RenderedMessage, settings: Settings, *, tag: str, expires_at: int):
        self.rendered = rendered
        self.signer = Signer(settings.signing_key())
        self.site_url = settings.site_url
        self.sender = settings.from_address
        self.domain = parse_from_address(settings.from_address).domain
        self.list_id = formataddr((settings.name, f"weekly.{settings.site_host}"))
        self.tag = tag
        self.expires_at = expires_at

    def token_for(self, subscriber_id: int) -> str:
        return self.signer.sign(READER_PURPOSE, subscriber_id, self.expires_at)

    def message(
        self, *, delivery_id: int, subscriber_id: int, email: str, batch: str | None = None
    ) -> OutgoingMessage:
        """`batch` names the request this message goes out in (the ledger's batch key); providers use
        it as an idempotency key and to find the batch again after a crash."""
        token = self.token_for(subscriber_id)
        return OutgoingMessage(
            sender=self.sender,
            to=email,
            subject=self.rendered.subject,
            content=self.rendered.for_reader(token=token, email=email),
            message_id=make_message_id(self.tag, delivery_id, self.domain),
            unsubscribe_url=links.unsubscribe_url(self.site_url, token),
            list_id=self.list_id,
            tag=self.tag,
            metadata={"issue": self.tag, "delivery": str(delivery_id), "subscriber": str(subscriber_id)}
            | ({"batch": batch} if batch else {}),
        )
