"""The send crontab in words, as the welcome email tells a reader when issues come."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter.cron_words import cadence_in_words, schedule_words
from newsletter.crontab import parse_cron

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 9 * * 1", "every Monday at 09:00"),
        ("0 9 * * mon", "every Monday at 09:00"),
        ("0 9 * * MON", "every Monday at 09:00"),
        ("30 7 * * 1-5", "every weekday (Monday to Friday) at 07:30"),
        ("0 9 * * mon-fri", "every weekday (Monday to Friday) at 09:00"),
        ("0 9 * * 0", "every Sunday at 09:00"),
        ("0 9 * * 7", "every Sunday at 09:00"),
        ("0 9 * * sat,sun", "every Saturday and Sunday at 09:00"),
        ("0 9 * * 6,0", "every Saturday and Sunday at 09:00"),
        ("0 9 * * 1,3,5", "every Monday, Wednesday and Friday at 09:00"),
        ("0 9 * * 5-1", "every Monday, Friday, Saturday and Sunday at 09:00"),
        ("0 9 * * */2", "every Tuesday, Thursday, Saturday and Sunday at 09:00"),
        ("0 9 * * *", "every day at 09:00"),
        ("0 9 * * 0-6", "every day at 09:00"),
        ("0 9,17 * * 4", "every Thursday at 09:00 and 17:00"),
        ("5 0 * * 2", "every Tuesday at 00:05"),
        ("0 9 1 * *", "on the 1st of every month at 09:00"),
        ("0 9 1,15 * *", "on the 1st and 15th of every month at 09:00"),
        ("0 8 2,3,22,23 * *", "on the 2nd, 3rd, 22nd and 23rd of every month at 08:00"),
        ("0 8 11,12,13 * *", "on the 11th, 12th and 13th of every month at 08:00"),
    ],
)
def test_the_common_forms_are_said_in_words(expr, words):
    parse_cron(expr, BERLIN)  # every case is a crontab the settings accept
    assert schedule_words(expr) == words


@pytest.mark.parametrize(
    "expr",
    [
        "*/30 * * * *",  # a step in the minute
        "0 */6 * * *",  # a step in the hour
        "0 9-17 * * 1",  # a range of hours
        "0 0,4,8,12,16 * * *",  # more hours than reads well
        "0 9 * 1 1",  # some months only
        "0 9 1 * 1",  # a day of the month and a weekday
        "0 9 31 * *",  # skipped in short months
        "0 9 1-7 * *",  # a range of days
        "0 9 last * *",  # APScheduler's own words
    ],
)
def test_odd_schedules_are_said_by_their_next_run_as_the_scheduler_computes_it(expr):
    now = datetime(2026, 11, 26, 10, tzinfo=BERLIN)
    assert schedule_words(expr) is None
    said = cadence_in_words(expr, "Europe/Berlin", now)
    upcoming = parse_cron(expr, BERLIN).get_next_fire_time(None, now).astimezone(BERLIN)
    assert said == (
        f"regularly; the next one on {upcoming:%A} {upcoming.day} {upcoming:%B %Y at %H:%M} (Europe/Berlin)"
    )


def test_the_time_zone_is_named():
    assert cadence_in_words("0 9 * * 1", "Europe/Berlin") == "every Monday at 09:00 (Europe/Berlin)"
    assert cadence_in_words("0 18 * * 5", "UTC") == "every Friday at 18:00 (UTC)"
