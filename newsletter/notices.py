"""Transactional emails to one reader: the confirmation link, and the link to their preferences.

Each kind is compiled from MJML once per process and personalised like an issue. None carries
List-Unsubscribe: they are answers to the reader's own request, not list mail.
"""

from __future__ import annotations

import secrets
import time
from enum import StrEnum

from newsletter import links
from newsletter.config import Settings
from newsletter.headers import parse_from_address
from newsletter.mail import OutgoingMessage
from newsletter.render import Notice, Renderer, masthead_from
from newsletter.rendered import RenderedMessage
from newsletter.tokens import Signer

CONFIRM_PURPOSE = "confirm"
READER_PURPOSE = "reader"


class NoticeKind(StrEnum):
    CONFIRM = "confirm"
    ALREADY_SUBSCRIBED = "already-subscribed"
    MANAGE_LINK = "manage-link"


def _copy(kind: NoticeKind, settings: Settings) -> Notice:
    name = settings.name
    if kind == NoticeKind.CONFIRM:
        return Notice(
            subject=f"Confirm your subscription to {name}",
            preheader="One click and the next comparison lands in your inbox.",
            heading="Please confirm your subscription",
            paragraphs=(
                f"Someone, hopefully you, asked to get {name} at this address: one email a week with the "
                "AI tool comparisons worth your time, the panel's verdicts and the community vote.",
                "Press the button to confirm. Until you do, we will not send you anything else.",
            ),
            button="Confirm my subscription",
            footnote=f"The link works for {settings.confirm_token_days} days. If you did not ask for this, "
            "ignore this email and you will not hear from us again.",
        )
    if kind == NoticeKind.ALREADY_SUBSCRIBED:
        return Notice(
            subject=f"You are already subscribed to {name}",
            preheader="No need to sign up again. Here is how to change your settings.",
            heading="You are already on the list",
            paragraphs=(
                f"Someone asked to subscribe this address to {name}, and it already gets every issue. "
                "Nothing has changed.",
                "To pause, pick categories, download your data or leave, use your preferences page.",
            ),
            button="Open my preferences",
            footnote="If you did not ask for this, you can ignore this email.",
        )
    return Notice(
        subject=f"Your link to manage {name}",
        preheader="Pause, choose categories, download your data or unsubscribe.",
        heading="Manage your subscription",
        paragraphs=(
            "Here is a fresh link to your preferences: pause, choose categories, download your data, "
            "unsubscribe or erase your address.",
        ),
        button="Open my preferences",
        footnote="If you did not ask for this, you can ignore this email.",
    )


class Notices:
    """Builds the messages; compiles each kind's template on first use only."""

    def __init__(self, settings: Settings, renderer: Renderer | None = None):
        self.settings = settings
        self.renderer = renderer or Renderer()
        self.signer = Signer(settings.signing_key())
        self.domain = parse_from_address(settings.from_address).domain
        self._rendered: dict[NoticeKind, RenderedMessage] = {}

    def rendered(self, kind: NoticeKind) -> RenderedMessage:
        if kind not in self._rendered:
            site = self.settings.site_url
            link = (
                (lambda token: links.confirm_url(site, token))
                if kind == NoticeKind.CONFIRM
                else (lambda token: links.preferences_url(site, token))
            )
            self._rendered[kind] = self.renderer.render_notice(
                _copy(kind, self.settings), masthead_from(self.settings), link
            )
        return self._rendered[kind]

    def confirm_token(self, subscriber_id: int, now: float | None = None) -> str:
        expires = int(now or time.time()) + self.settings.confirm_token_days * 86400
        return self.signer.sign(CONFIRM_PURPOSE, subscriber_id, expires)

    def reader_token(self, subscriber_id: int, now: float | None = None) -> str:
        expires = int(now or time.time()) + self.settings.link_token_days * 86400
        return self.signer.sign(READER_PURPOSE, subscriber_id, expires)

    def message(self, kind: NoticeKind, *, subscriber_id: int, email: str) -> OutgoingMessage:
        token = (
            self.confirm_token(subscriber_id)
            if kind == NoticeKind.CONFIRM
            else self.reader_token(subscriber_id)
        )
        rendered = self.rendered(kind)
        return OutgoingMessage(
            sender=self.settings.from_address,
            to=email,
            subject=rendered.subject,
            content=rendered.for_reader(token=token, email=email),
            message_id=f"<{kind}.{subscriber_id}.{secrets.token_hex(6)}@{self.domain}>",
            tag=kind.value,
            metadata={"kind": kind.value, "subscriber": str(subscriber_id)},
        )


def _editor_copy(week: str, settings: Settings) -> Notice:
    return Notice(
        subject=f"[{settings.name}] Issue {week} is not approved: it was not sent",
        preheader="The scheduled send found a draft. Review it and approve it to send it.",
        heading=f"Issue {week} is waiting for your approval",
        paragraphs=(
            f"The scheduled send found issue {week} still a draft, so nothing went out.",
            f"Review it in the preview, then run `newsletter issue approve --week {week}` and "
            f"`newsletter issue send --week {week}`.",
        ),
        button="Open the preview",
        footnote="You get this because your address is in NEWSLETTER_EDITOR_EMAILS.",
    )


def editor_alert(notices: Notices, *, week: str, email: str) -> OutgoingMessage:
    """The email that tells an editor a scheduled send found a draft."""
    settings = notices.settings
    link = f"{settings.preview_url.rstrip('/')}/issues/{week}"
    rendered = notices.renderer.render_notice(
        _editor_copy(week, settings), masthead_from(settings), lambda _token: link
    )
    return OutgoingMessage(
        sender=settings.from_address,
        to=email,
        subject=rendered.subject,
        content=rendered.for_reader(token="", email=email),
        message_id=f"<editor-alert.{week.lower()}.{secrets.token_hex(6)}@{notices.domain}>",
        tag="editor-alert",
    )
