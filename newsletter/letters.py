"""The emails to a reader on the list that are not issues: the welcome, sent once when they confirm,
and the re-engagement question ("Still want the weekly verdicts?") before a silent reader is let go.

Both are list mail, like an issue: `List-Unsubscribe` and `List-Unsubscribe-Post` headers, the list's
id, and the issue's footer (preferences, unsubscribe, postal address). Both come from one template,
`templates/email/letter.mjml.j2` (and `.txt.j2`), rendered once and personalised per reader like an
issue: the welcome once per variant (the reader's categories, the latest issue), the question once
per run of the sunset job. Content links carry UTM tags and are not tracked: neither email is an issue
with a link table.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from email.utils import formataddr

from newsletter import links
from newsletter.config import Settings
from newsletter.cron_words import cadence_in_words
from newsletter.headers import parse_from_address
from newsletter.mail import FixedContent, OutgoingMessage
from newsletter.render import Renderer, masthead_from
from newsletter.rendered import RenderedMessage
from newsletter.tokens import Signer

READER_PURPOSE = "reader"  # the personal links of every email (see newsletter.notices)
STAY_PURPOSE = "stay"  # the stay link of the re-engagement question: good for nothing else
WELCOME_TAG = "welcome"
STILL_WANT_TAG = "sunset"
STILL_WANT_SUBJECT = "Still want the weekly verdicts?"
WELCOME_VARIANTS = 32  # renders kept: readers who chose all categories share one


@dataclass(frozen=True)
class Fact:
    """A labelled line of a letter (`What you get`, `When`), with an optional link under it."""

    label: str
    text: str
    url: str | None = None
    link: str = ""


@dataclass(frozen=True)
class Letter:
    """The words of a letter; the template lays them out."""

    subject: str
    preheader: str
    heading: str
    paragraphs: tuple[str, ...]
    button: str
    campaign: str  # utm_campaign of its content links
    facts: tuple[Fact, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class LatestIssue:
    """The newest sent issue, as the welcome shows it."""

    slug: str
    subject: str


@dataclass(frozen=True)
class WelcomeFor:
    """Who a welcome goes to and what it says to them."""

    subscriber_id: int
    email: str
    categories: frozenset[str] | None  # None: every category
    due_at: datetime  # the confirmation that made it owed: names the message, so a retry is the same one


@dataclass
class Letters:
    """Builds the letters' messages; keeps each render for the next reader of the same variant."""

    settings: Settings
    renderer: Renderer = field(default_factory=Renderer)

    def __post_init__(self) -> None:
        self.signer = Signer(self.settings.signing_key())
        self.domain = parse_from_address(self.settings.from_address).domain
        self.list_id = formataddr((self.settings.name, f"weekly.{self.settings.site_host}"))
        self._welcomes: OrderedDict[tuple, RenderedMessage] = OrderedDict()

    def reader_token(self, subscriber_id: int, now: float | None = None) -> str:
        expires = int(now or time.time()) + self.settings.link_token_days * 86400
        return self.signer.sign(READER_PURPOSE, subscriber_id, expires)

    def stay_token(self, subscriber_id: int, now: float | None = None) -> str:
        expires = int(now or time.time()) + self.settings.link_token_days * 86400
        return self.signer.sign(STAY_PURPOSE, subscriber_id, expires)

    # --- the welcome ------------------------------------------------------------------------------

    def welcome(self, reader: WelcomeFor, latest: LatestIssue | None) -> OutgoingMessage:
        key = (tuple(sorted(reader.categories)) if reader.categories is not None else None, latest)
        rendered = self._welcomes.get(key)
        if rendered is None:
            rendered = self._render(welcome_letter(self.settings, reader.categories, latest))
            self._welcomes[key] = rendered
            if len(self._welcomes) > WELCOME_VARIANTS:
                self._welcomes.popitem(last=False)
        else:
            self._welcomes.move_to_end(key)
        token = self.reader_token(reader.subscriber_id)
        stamp = int(reader.due_at.timestamp())
        return self._message(
            rendered.for_reader(token=token, email=reader.email),
            rendered.subject,
            to=reader.email,
            token=token,
            message_id=f"<{WELCOME_TAG}.{reader.subscriber_id}.{stamp}@{self.domain}>",
            tag=WELCOME_TAG,
            metadata={"kind": WELCOME_TAG, "subscriber": str(reader.subscriber_id)},
        )

    # --- the re-engagement question ---------------------------------------------------------------

    def still_want(self, issues: int, answer_by: date) -> StillWant:
        """The question for one run of the sunset job: rendered once, then a join per reader."""
        stay_marker = f"%%{secrets.token_hex(8)}.stay%%"
        letter = still_want_letter(self.settings, issues, answer_by)
        rendered = self._render(letter, button_url=links.stay_url(self.settings.site_url, stay_marker))
        return StillWant(self, rendered, stay_marker)

    # --- shared -----------------------------------------------------------------------------------

    def _render(self, letter: Letter, *, button_url: str | None = None) -> RenderedMessage:
        site = self.settings.site_url

        def context(marker) -> dict:
            token = marker("token")
            return {
                "letter": letter,
                "masthead": masthead_from(self.settings),
                "reader_email": marker("email"),
                "button_url": button_url or links.preferences_url(site, token),
                "preferences_url": links.preferences_url(site, token),
                "unsubscribe_url": links.unsubscribe_url(site, token),
                "site_url": links.with_utm(site, campaign=letter.campaign, content="footer"),
                "web_url": None,
            }

        return self.renderer.render_letter("letter", letter.subject, letter.preheader, context)

    def _message(self, content, subject: str, *, to: str, token: str, **fields) -> OutgoingMessage:
        return OutgoingMessage(
            sender=self.settings.from_address,
            to=to,
            subject=subject,
            content=content,
            unsubscribe_url=links.unsubscribe_url(self.settings.site_url, token),
            list_id=self.list_id,
            **fields,
        )


@dataclass
class StillWant:
    """The re-engagement question of one run: each reader's message is the render with their reader
    token (preferences, unsubscribe) and their stay token put in."""

    letters: Letters
    rendered: RenderedMessage
    stay_marker: str

    def message(self, *, ask_id: int, subscriber_id: int, email: str) -> OutgoingMessage:
        token = self.letters.reader_token(subscriber_id)
        stay = self.letters.stay_token(subscriber_id)
        personal = self.rendered.for_reader(token=token, email=email)
        content = FixedContent(
            personal.html.replace(self.stay_marker, stay), personal.text.replace(self.stay_marker, stay)
        )
        return self.letters._message(
            content,
            self.rendered.subject,
            to=email,
            token=token,
            message_id=f"<{STILL_WANT_TAG}.{ask_id}@{self.letters.domain}>",
            tag=STILL_WANT_TAG,
            metadata={"kind": STILL_WANT_TAG, "subscriber": str(subscriber_id), "ask": str(ask_id)},
        )


def welcome_letter(
    settings: Settings, categories: frozenset[str] | None, latest: LatestIssue | None
) -> Letter:
    """What the welcome says: the promise, what the reader gets, when, the latest issue to start with
    and where to change it all."""
    name = settings.name
    cadence = cadence_in_words(settings.send_cron, settings.timezone)
    if categories:
        chosen = _join(sorted(categories))
        what = f"The best of each week's comparisons in {chosen}, with the panel's verdicts and the vote."
    else:
        what = "The best of each week's AI tool comparisons, with the panel's verdicts and the vote."
    if latest is None:
        latest_fact = Fact("The latest issue", "The first one is on its way to you.")
    else:
        url = links.with_utm(
            links.issue_url(settings.site_url, latest.slug), campaign=WELCOME_TAG, content="latest-issue"
        )
        latest_fact = Fact("The latest issue", f"{latest.subject}.", url, "Read it in your browser")
    return Letter(
        subject=f"Welcome to {name}",
        preheader="What you get, when it arrives, and the latest issue to start with.",
        heading=f"Welcome to {name}",
        paragraphs=(f"Thank you for confirming. {settings.promise}",),
        facts=(
            Fact("What you get", what),
            Fact("When it arrives", cadence[:1].upper() + cadence[1:] + "."),
            latest_fact,
        ),
        button="Open my preferences",
        campaign=WELCOME_TAG,
        after=(
            "There you can pause, choose the categories you get, turn click tracking off or unsubscribe.",
        ),
    )


def still_want_letter(settings: Settings, issues: int, answer_by: date) -> Letter:
    """The question: why we ask, what one button does, what happens without an answer. Opens are
    never mentioned: they are never counted."""
    name = settings.name
    by = f"{answer_by.day} {answer_by:%B %Y}"
    return Letter(
        subject=STILL_WANT_SUBJECT,
        preheader=f"One button keeps {name} coming. Without an answer by {by} we stop sending it.",
        heading=STILL_WANT_SUBJECT,
        paragraphs=(
            f"The last {issues} issues of {name} reached you, and we did not see you click through to "
            "a comparison or vote on a tool in any of them. Inboxes are busy, and that is fine.",
            f"We would rather send {name} only to people who read it. If you still want it, press the "
            f"button. If we do not hear from you by {by}, we will stop sending it to this address.",
        ),
        button="Yes, keep sending it",
        campaign=STILL_WANT_TAG,
        after=(
            "Reading a comparison or voting in the next issue counts as a yes too.",
            "Changed your mind later? You can sign up again at any time.",
        ),
    )


def _join(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
