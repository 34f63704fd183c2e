"""One compiled email, many readers: the per-reader step, kept to a token and a few string joins.

With tracking on (NEWSLETTER_TRACKING), the mailer makes the tracked variant of the render once: every
content link becomes `/r/<issue link part>.<reader token>`, the hidden link and (with opens) the pixel
are put in. A reader still costs one HMAC (their token) and one join; a reader who turned tracking
off gets the plain render.
"""

from __future__ import annotations

from email.utils import formataddr

from newsletter import links
from newsletter.config import Settings
from newsletter.headers import parse_from_address
from newsletter.mail import OutgoingMessage, make_message_id
from newsletter.rendered import RenderedMessage
from newsletter.tokens import Signer
from newsletter.tracking import links as tracked
from newsletter.tracking.links import LinkSigner, LinkSpec

READER_PURPOSE = "reader"


class IssueMailer:
    """Builds each reader's message from one RenderedMessage; nothing here compiles a template.

    `issue_id` names the issue in tracked links (0 for a preview: no issue has id 0, so its tracked
    links lead nowhere, like its personal links)."""

    def __init__(
        self,
        rendered: RenderedMessage,
        settings: Settings,
        *,
        tag: str,
        expires_at: int,
        issue_id: int = 0,
    ):
        self.rendered = rendered
        key = settings.signing_key()
        self.signer = Signer(key)
        self.site_url = settings.site_url
        self.sender = settings.from_address
        self.domain = parse_from_address(settings.from_address).domain
        self.list_id = formataddr((settings.name, f"weekly.{settings.site_host}"))
        self.tag = tag
        self.expires_at = expires_at
        self.issue_id = issue_id
        self.tracked, self.links = None, ()
        if settings.tracking != "off" and rendered.source is not None:
            self.tracked, self.links = self._tracked(LinkSigner(key), settings.tracking == "clicks+opens")

    def _tracked(self, signer: LinkSigner, opens: bool) -> tuple[RenderedMessage, tuple[LinkSpec, ...]]:
        """The tracked variant of the render and every link it carries (for the issue's link table)."""
        marker = self.rendered.token_marker

        def url(spec: LinkSpec, make=tracked.tracked_url) -> str:
            return make(self.site_url, signer.link_part(self.issue_id, spec.code, self.expires_at), marker)

        decoy = tracked.decoy_spec(self.site_url)
        specs = [*self.rendered.links, decoy]
        slots = {"decoy": tracked.decoy_markup(url(decoy))}
        if opens:
            pixel = tracked.open_spec()
            specs.append(pixel)
            slots["pixel"] = tracked.pixel_markup(url(pixel, tracked.pixel_url))
        by_code = {spec.code: spec for spec in specs}
        return self.rendered.with_links(url, slots=slots, tracked=by_code), tuple(by_code.values())

    def token_for(self, subscriber_id: int) -> str:
        return self.signer.sign(READER_PURPOSE, subscriber_id, self.expires_at)

    def message(
        self,
        *,
        delivery_id: int,
        subscriber_id: int,
        email: str,
        batch: str | None = None,
        tracked: bool = True,
    ) -> OutgoingMessage:
        """`batch` names the request this message goes out in (the ledger's batch key); providers use
        it as an idempotency key and to find the batch again after a crash. `tracked` False: the
        reader turned tracking off, so their message carries plain links."""
        token = self.token_for(subscriber_id)
        rendered = self.tracked if tracked and self.tracked is not None else self.rendered
        return OutgoingMessage(
            sender=self.sender,
            to=email,
            subject=rendered.subject,
            content=rendered.for_reader(token=token, email=email),
            message_id=make_message_id(self.tag, delivery_id, self.domain),
            unsubscribe_url=links.unsubscribe_url(self.site_url, token),
            list_id=self.list_id,
            tag=self.tag,
            metadata={"issue": self.tag, "delivery": str(delivery_id), "subscriber": str(subscriber_id)}
            | ({"batch": batch} if batch else {}),
        )
