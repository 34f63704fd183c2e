"""A crontab in words, for readers: `0 9 * * 1` in Europe/Berlin is "every Monday at 09:00
(Europe/Berlin)".

It says the forms a newsletter's send schedule takes: a fixed minute at one or a few hours, on every
day, on some days of the week (lists, ranges, names, 0 or 7 for Sunday), or on some days of the month.
Anything else (steps or ranges in the minute or hour, a month list, both a day of the month and a
weekday) is said by its next run as the scheduler computes it, which is never wrong:
"regularly; the next one on Monday 7 December 2026 at 09:00 (Europe/Berlin)".
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from newsletter.crontab import parse_cron, weekday_names

_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_WORDS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}
_NUMBERS = re.compile(r"\d{1,2}(,\d{1,2})*")
MAX_HOURS = 4  # "at 08:00, 12:00, 16:00 and 20:00" still reads; more is a feed, said by its next run


def cadence_in_words(expr: str, timezone: str, now: datetime | None = None) -> str:
    """When a crontab runs, in words, with its time zone. `expr` is a valid five-field crontab."""
    words = schedule_words(expr)
    if words is not None:
        return f"{words} ({timezone})"
    zone = ZoneInfo(timezone)
    upcoming = parse_cron(expr, zone).get_next_fire_time(None, (now or datetime.now(zone)).astimezone(zone))
    if upcoming is None:
        return f"on a schedule of its own ({timezone})"
    moment = upcoming.astimezone(zone)
    return f"regularly; the next one on {moment:%A} {moment.day} {moment:%B %Y at %H:%M} ({timezone})"


def schedule_words(expr: str) -> str | None:
    """`every Monday at 09:00`, or None when the crontab is not one of the forms said in words."""
    fields = expr.split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    times = _times(minute, hour)
    if times is None or month != "*":
        return None
    if day == "*":
        days = _weekdays(weekday)
        return f"{days} at {times}" if days else None
    if weekday != "*" or not _NUMBERS.fullmatch(day):
        return None
    dates = sorted({int(d) for d in day.split(",")})
    if not all(1 <= d <= 28 for d in dates):  # the 29th to the 31st are skipped in short months
        return None
    return f"on the {_join([_ordinal(d) for d in dates])} of every month at {times}"


def _times(minute: str, hour: str) -> str | None:
    if not (minute.isdigit() and _NUMBERS.fullmatch(hour)):
        return None
    hours = sorted({int(h) for h in hour.split(",")})
    if int(minute) > 59 or hours[-1] > 23 or len(hours) > MAX_HOURS:
        return None
    return _join([f"{h:02d}:{int(minute):02d}" for h in hours])


def _weekdays(field: str) -> str | None:
    try:
        named = set(weekday_names(field))
    except ValueError:
        return None
    days = [day for day in _WEEK if day in named]
    if len(days) == 7:
        return "every day"
    if days == list(_WEEK[:5]):
        return "every weekday (Monday to Friday)"
    return "every " + _join([_DAY_WORDS[day] for day in days]) if days else None


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
