"""Other platforms' subscriber exports: which columns each writes, what its statuses mean here.

A publisher moving here brings a list from Substack, Mailchimp, beehiiv, Ghost, listmonk, Buttondown
or Kit. Each writes its own CSV; the one rule they share is that consent is never lost in the move:
a reader whom the export marks as having left (unsubscribed, cleaned, bounced, complained, disabled,
blocklisted, deleted) is never made active, a reader still waiting to confirm stays pending, and a
status this module does not know refuses the row rather than guess.

Which export of each platform is meant, and where each shape comes from (the README's "Imports from
other platforms" has the same table for readers):

* Substack: Settings > Exports > "Create new export", the zip's `email_list.<publication>.csv`:
  `email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at` (older exports:
  `email,active_subscription,expiry,email_disabled,prefer_digests,created_at`). `email_disabled=true`
  is a reader who turned emails off. Ghost's Substack importer (TryGhost/migrate,
  mg-substack-members-csv) reads the same columns; it also skips `@deletion-request.substack.com`.
* Mailchimp: Audience > Export audience, a zip of `subscribed_members_export_<id>.csv`,
  `unsubscribed_members_export_<id>.csv` and `cleaned_members_export_<id>.csv` (newer accounts:
  `..._email_audience_export_...`): `Email Address`, the audience's merge fields, then `MEMBER_RATING,
  OPTIN_TIME, OPTIN_IP, CONFIRM_TIME, CONFIRM_IP, LATITUDE, LONGITUDE, GMTOFF, DSTOFF, TIMEZONE, CC,
  REGION`, then `LAST_CHANGED` (subscribed), `UNSUB_TIME, UNSUB_CAMPAIGN_TITLE, UNSUB_CAMPAIGN_ID,
  UNSUB_REASON, UNSUB_REASON_OTHER` (unsubscribed) or `CLEAN_TIME, CLEAN_CAMPAIGN_TITLE,
  CLEAN_CAMPAIGN_ID` (cleaned), then `LEID, EUID, NOTES, TAGS`. Which file it is shows in the columns.
  Shapes from Ghost's Mailchimp importer fixtures (TryGhost/migrate, mg-mailchimp-members).
* beehiiv: Subscribers > Export: `email,First Name,Last Name,status,tier,created_at,
  stripe_customer_id,...,unsubscribed_at` with times like `2023-03-24 10:23:10 UTC` (TryGhost/migrate,
  mg-beehiiv-members); statuses from beehiiv's API: active, inactive, pending, validating, invalid,
  needs_attention.
* Ghost: Members > Export: `id,email,name,note,subscribed_to_emails,complimentary_plan,
  stripe_customer_id,created_at,deleted_at,labels,tiers` (TryGhost/Ghost, ghost/members-csv unparse).
* listmonk: Subscribers > Export: `uuid,email,name,attributes,status,created_at,updated_at`, status
  enabled, disabled or blocklisted, times in Go's format `2024-03-01 10:00:00.123 +0000 UTC`
  (knadh/listmonk, cmd/subscribers.go ExportSubscribers).
* Buttondown: Settings > Exports, the subscribers CSV: `email` (or `email_address`), `subscriber_type`
  (or `type`), `creation_date`; types from Buttondown's OpenAPI enums (buttondown/openapi). The
  export's exact column order is not published; only these columns are read.
* Kit (ConvertKit): Subscribers > Export: `first_name,email_address,state,created_at,...` (`status`
  accepted too); states from Kit's API v4: active, inactive (unconfirmed), cancelled, bounced,
  complained. Not checked against a real export file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Kind(StrEnum):
    """What a row of an export asks for here."""

    ACTIVE = "active"  # subscribed there: the list owner vouches for their consent
    PENDING = "pending"  # never confirmed there: stays pending
    SUPPRESSED = "suppressed"  # left there: never active here until they confirm themselves
    SKIP = "skip"  # nothing to store (a deletion request's placeholder address)


# Most restrictive first: when one address appears twice in a file, the stricter row wins (a row that
# says they left is kept even over one with nothing to store, so that the address stays suppressed).
STRICTNESS = {Kind.SUPPRESSED: 0, Kind.SKIP: 1, Kind.PENDING: 2, Kind.ACTIVE: 3}


class RowError(ValueError):
    """A row this format cannot read; the message names the column and the value."""


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Kind
    reason: str  # the export's own word for it: "cleaned", "email_disabled", "blocklisted"
    created_at: datetime | None = None  # when they signed up there
    confirmed_at: datetime | None = None  # when they confirmed there
    left_at: datetime | None = None  # when they left there


Cells = Callable[[str], str]  # a row's value for a (lower-case) column name; "" when absent


@dataclass(frozen=True)
class Format:
    """One platform's export: how to recognise its header and read a row of it."""

    name: str
    title: str
    email_columns: tuple[str, ...]  # the first one present holds the address
    signature: tuple[tuple[str, ...], ...]  # `auto` picks this format when all of any one group are present
    expected: str  # the columns named when a header does not fit
    read: Callable[[Cells, frozenset[str], datetime], Verdict]

    def email_column(self, columns: Sequence[str]) -> str | None:
        return next((c for c in self.email_columns if c in columns), None)

    def matches(self, columns: frozenset[str]) -> bool:
        return self.email_column(tuple(columns)) is not None and any(
            all(c in columns for c in group) for group in self.signature
        )


# --- times ---------------------------------------------------------------------------------------

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"  # time, seconds and fraction optional
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"  # Z, UTC, +01:00, +0100
    r"(?:\s+[A-Z][A-Za-z]{1,5}|\s+[+-]\d{4})?"  # Go's trailing zone name: "+0000 UTC", "+0530 IST"
)
MAX_TIME_TEXT = 64


def parse_time(text: str, column: str, now: datetime) -> datetime | None:
    """An export's time in UTC; None when the cell is empty. Times without an offset are UTC (every
    format above writes UTC or says its offset). Bounded to 2000-01-01 .. now + 1 day."""
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_TIME_TEXT or not (match := _TIME.fullmatch(text)):
        raise RowError(f"{column} {text[:MAX_TIME_TEXT]!r} is not a time (like 2024-03-01T10:00:00Z)")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise RowError(f"{column} {text!r} is not a time: {exc}") from None
    if offset and offset not in ("Z", "UTC", "GMT"):
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 14 or minutes > 59:
            raise RowError(f"{column} {text!r} has an impossible offset")
        shift = timedelta(hours=hours, minutes=minutes)
        moment = moment - shift if offset[0] == "+" else moment + shift
    if not EARLIEST <= moment <= now + timedelta(days=1):
        raise RowError(f"{column} {text!r} is before 2000 or in the future")
    return moment


def _flag(cells: Cells, column: str) -> bool:
    value = cells(column).strip().lower()
    if value in ("true", "false"):
        return value == "true"
    raise RowError(f"{column} is {value[:40]!r}; expected true or false")


def _status(cells: Cells, column: str, known: dict[str, Kind], platform: str) -> tuple[Kind, str]:
    value = cells(column).strip().lower()
    if value in known:
        return known[value], value
    shown = repr(value[:40]) if value else "empty"
    raise RowError(f"{column} is {shown}; {platform} writes one of {', '.join(known)}")


# --- the formats ---------------------------------------------------------------------------------

SUBSTACK_DELETED = "@deletion-request.substack.com"


def _substack(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    created = parse_time(cells("created_at"), "created_at", now)
    if cells("email").strip().lower().endswith(SUBSTACK_DELETED):
        return Verdict(Kind.SKIP, "deletion request")
    if _flag(cells, "email_disabled"):
        return Verdict(Kind.SUPPRESSED, "email_disabled", created)
    return Verdict(Kind.ACTIVE, "subscribed", created, created)


def _mailchimp(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    optin = parse_time(cells("optin_time"), "OPTIN_TIME", now)
    confirmed = parse_time(cells("confirm_time"), "CONFIRM_TIME", now)
    created = optin or confirmed
    if "clean_time" in columns:
        return Verdict(
            Kind.SUPPRESSED, "cleaned", created, None, parse_time(cells("clean_time"), "CLEAN_TIME", now)
        )
    if "unsub_time" in columns:
        left = parse_time(cells("unsub_time"), "UNSUB_TIME", now)
        return Verdict(Kind.SUPPRESSED, "unsubscribed", created, None, left)
    return Verdict(Kind.ACTIVE, "subscribed", created, confirmed or optin)


BEEHIIV_STATUSES = {
    "active": Kind.ACTIVE,
    "pending": Kind.PENDING,  # waiting for their double opt-in
    "validating": Kind.PENDING,  # beehiiv still checking the address
    "needs_attention": Kind.PENDING,
    "inactive": Kind.SUPPRESSED,  # unsubscribed
    "invalid": Kind.SUPPRESSED,  # the address failed validation or bounced
}


def _beehiiv(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    created = parse_time(cells("created_at"), "created_at", now)
    left = parse_time(cells("unsubscribed_at"), "unsubscribed_at", now)
    kind, status = _status(cells, "status", BEEHIIV_STATUSES, "beehiiv")
    if left is not None and kind != Kind.SUPPRESSED:
        return Verdict(Kind.SUPPRESSED, "unsubscribed", created, None, left)
    return Verdict(kind, status, created, created if kind == Kind.ACTIVE else None, left)


def _ghost(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    created = parse_time(cells("created_at"), "created_at", now)
    deleted = parse_time(cells("deleted_at"), "deleted_at", now)
    if deleted is not None:
        return Verdict(Kind.SUPPRESSED, "deleted", created, None, deleted)
    if not _flag(cells, "subscribed_to_emails"):
        return Verdict(Kind.SUPPRESSED, "subscribed_to_emails=false", created)
    return Verdict(Kind.ACTIVE, "subscribed", created, created)


LISTMONK_STATUSES = {"enabled": Kind.ACTIVE, "disabled": Kind.SUPPRESSED, "blocklisted": Kind.SUPPRESSED}


def _listmonk(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    created = parse_time(cells("created_at"), "created_at", now)
    kind, status = _status(cells, "status", LISTMONK_STATUSES, "listmonk")
    if kind == Kind.SUPPRESSED:
        return Verdict(kind, status, created, None, parse_time(cells("updated_at"), "updated_at", now))
    return Verdict(kind, status, created, created)


BUTTONDOWN_TYPES = {
    "regular": Kind.ACTIVE,
    "premium": Kind.ACTIVE,
    "gifted": Kind.ACTIVE,
    "trialed": Kind.ACTIVE,
    "churning": Kind.ACTIVE,
    "churned": Kind.ACTIVE,  # no longer paying, still on the list
    "past_due": Kind.ACTIVE,
    "paused": Kind.ACTIVE,  # a pause of the paid plan; still subscribed
    "unpaid": Kind.ACTIVE,
    "upcoming": Kind.ACTIVE,
    "unactivated": Kind.PENDING,  # never confirmed their address
    "unsubscribed": Kind.SUPPRESSED,
    "removed": Kind.SUPPRESSED,  # banned by the newsletter
    "complained": Kind.SUPPRESSED,
    "undeliverable": Kind.SUPPRESSED,
    "blocked": Kind.SUPPRESSED,  # stopped by Buttondown's signup firewall
}


def _buttondown(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    created = parse_time(cells("creation_date"), "creation_date", now)
    column = "subscriber_type" if "subscriber_type" in columns else "type"
    kind, status = _status(cells, column, BUTTONDOWN_TYPES, "Buttondown")
    if kind == Kind.SUPPRESSED:
        left_column = "undeliverability_date" if status == "undeliverable" else "unsubscription_date"
        left = parse_time(cells(left_column), left_column, now) if left_column in columns else None
        return Verdict(kind, status, created, None, left)
    return Verdict(kind, status, created, created if kind == Kind.ACTIVE else None)


KIT_STATES = {
    "active": Kind.ACTIVE,
    "inactive": Kind.PENDING,  # never confirmed (double opt-in)
    "cancelled": Kind.SUPPRESSED,  # unsubscribed
    "bounced": Kind.SUPPRESSED,
    "complained": Kind.SUPPRESSED,
}


def _kit(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    created = parse_time(cells("created_at"), "created_at", now)
    column = "state" if "state" in columns else "status"
    kind, status = _status(cells, column, KIT_STATES, "Kit")
    return Verdict(kind, status, created, created if kind == Kind.ACTIVE else None)


def _plain(cells: Cells, columns: frozenset[str], now: datetime) -> Verdict:
    return Verdict(Kind.ACTIVE, "listed")


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "substack",
            "Substack",
            ("email",),
            (("active_subscription", "email_disabled"),),
            "email, active_subscription, expiry, plan, email_disabled, created_at",
            _substack,
        ),
        Format(
            "mailchimp",
            "Mailchimp",
            ("email address",),
            (("member_rating",), ("optin_time",), ("leid", "euid")),
            '"Email Address", ..., MEMBER_RATING, OPTIN_TIME, CONFIRM_TIME, ..., '
            "(UNSUB_* or CLEAN_*), LEID, EUID",
            _mailchimp,
        ),
        Format(
            "ghost",
            "Ghost",
            ("email",),
            (("subscribed_to_emails",),),
            "id, email, name, note, subscribed_to_emails, complimentary_plan, stripe_customer_id, "
            "created_at, deleted_at, labels, tiers",
            _ghost,
        ),
        Format(
            "listmonk",
            "listmonk",
            ("email",),
            (("uuid", "attributes", "status"),),
            "uuid, email, name, attributes, status, created_at, updated_at",
            _listmonk,
        ),
        Format(
            "buttondown",
            "Buttondown",
            ("email", "email_address"),
            (("subscriber_type",), ("type", "creation_date")),
            "email (or email_address), subscriber_type (or type), creation_date",
            _buttondown,
        ),
        Format(
            "kit",
            "Kit",
            ("email_address",),
            (("state",), ("status", "first_name")),
            "first_name, email_address, state, created_at",
            _kit,
        ),
        Format(
            "beehiiv",
            "beehiiv",
            ("email",),
            tuple(
                ("status", marker)
                for marker in ("tier", "subscription_tier", "unsubscribed_at", "utm_source")
            ),
            "email, status, tier, created_at, ..., unsubscribed_at",
            _beehiiv,
        ),
        Format(
            "csv",
            "plain CSV",
            ("email", "email address", "email_address"),
            ((),),
            "email (or Email Address; other columns are ignored)",
            _plain,
        ),
    )
}
PLATFORMS = tuple(name for name in FORMATS if name != "csv")
CHOICES = ("auto", *FORMATS)

# A plain CSV whose header also says who left cannot be read as "every row is a reader": `auto`
# refuses it rather than ignore a column that may hold someone's unsubscribe.
CONSENT_COLUMNS = frozenset(
    {
        "status",
        "state",
        "subscribed",
        "unsubscribed",
        "unsubscribed_at",
        "subscription_status",
        "subscribed_to_emails",
        "email_disabled",
        "subscriber_type",
        "deleted_at",
        "bounced",
        "blocklisted",
        "opt_in",
        "optin",
        "consent",
    }
)


class HeaderRefused(ValueError):
    """The header fits no export this command reads (or not the one asked for)."""


def describe_formats() -> str:
    return "; ".join(f"{f.name}: {f.expected}" for f in FORMATS.values())


def choose_format(columns: Sequence[str], wanted: str) -> Format:
    """The format of a header (`wanted` is `auto` or a format's name). Raises HeaderRefused."""
    present = frozenset(columns)
    if wanted != "auto":
        chosen = FORMATS[wanted]
        if not chosen.matches(present):
            raise HeaderRefused(
                f"the header is not {chosen.title}'s export: --from {wanted} expects {chosen.expected}"
            )
        return chosen
    for candidate in FORMATS.values():
        if candidate.name != "csv" and candidate.matches(present):
            return candidate
    if FORMATS["csv"].email_column(tuple(columns)) is not None:
        unread = sorted(present & CONSENT_COLUMNS)
        if unread:
            raise HeaderRefused(
                f"the header has an address column and also {', '.join(repr(c) for c in unread)}, which "
                "no known export explains: name the platform with --from, or pass --from csv to vouch "
                "for every row as active"
            )
        return FORMATS["csv"]
    raise HeaderRefused(
        f"no 'email' column, and the header fits no platform's export; expected one of: {describe_formats()}"
    )


def mailchimp_file(columns: Sequence[str]) -> str:
    """Which of Mailchimp's export files a header is."""
    if "clean_time" in columns:
        return "cleaned"
    return "unsubscribed" if "unsub_time" in columns else "subscribed"
