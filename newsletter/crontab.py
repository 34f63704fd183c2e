"""Five-field crontab schedules in local time, read the way crontab reads them, DST included.

APScheduler 3 counts weekdays from Monday (its `from_crontab` reads `1` as Tuesday) and fires a time
in the autumn's repeated hour twice; `LocalCronTrigger` reads weekdays as crontab does (0 or 7 is
Sunday) and fires once per wall-clock time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_names(field: str) -> str:
    """A crontab day-of-week field (0 or 7 = Sunday) in APScheduler's words (which counts from Monday)."""
    if field == "*":
        return "*"
    names: list[str] = []
    for item in field.lower().split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            first, last = (_day_number(part) for part in base.split("-", 1))
        else:
            first = last = _day_number(base)
            if step_text:
                last = 6
        days = (
            range(first, last + 1, step) if first <= last else [*range(first, 7), *range(0, last + 1)][::step]
        )
        names.extend(_DAYS[day % 7] for day in days)
    return ",".join(dict.fromkeys(names))


def weekday_names(field: str) -> list[str]:
    """The days a crontab day-of-week field names (`sun`...`sat`, each once); `*` names all seven."""
    return list(_DAYS) if field == "*" else _day_names(field).split(",")


def _day_number(token: str) -> int:
    if token in _DAYS:
        return _DAYS.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"{token!r} is not a day of the week (0-7 or sun-sat)")


class LocalCronTrigger(CronTrigger):
    """A crontab schedule in local time that fires once per wall-clock time, DST included.

    A time in the hour that is skipped in spring fires once, at the same instant a minute later by
    the clock would (APScheduler's behaviour). A time in the hour that repeats in autumn fires at its
    first occurrence only: plain CronTrigger fires it twice.
    """

    def __init__(self, expr: str, zone: ZoneInfo):
        fields = expr.split()
        if len(fields) != 5:
            raise ValueError(f"{expr!r} is not a five-field crontab (minute hour day month weekday)")
        minute, hour, day, month, weekday = fields
        super().__init__(
            minute=minute, hour=hour, day=day, month=month, day_of_week=_day_names(weekday), timezone=zone
        )
        self.expr = expr

    def get_next_fire_time(self, previous_fire_time, now):
        candidate = super().get_next_fire_time(previous_fire_time, now)
        while candidate is not None and _second_occurrence(candidate):
            resume = _after_repeated_hour(candidate)
            candidate = super().get_next_fire_time(None, resume)
        return candidate

    def __getstate__(self):
        return super().__getstate__() | {"expr": self.expr}

    def __setstate__(self, state):
        self.expr = state.pop("expr", "")
        super().__setstate__(state)

    def __str__(self) -> str:
        return f"cron {self.expr!r} ({self.timezone})"


def _second_occurrence(moment: datetime) -> bool:
    """True for the later of two instants that share a local wall-clock time (the repeated hour)."""
    naive = moment.replace(tzinfo=None)
    first = naive.replace(tzinfo=moment.tzinfo, fold=0)
    return (
        first.utcoffset() != moment.utcoffset()
        and moment.utcoffset() == naive.replace(tzinfo=moment.tzinfo, fold=1).utcoffset()
    )


def _after_repeated_hour(moment: datetime) -> datetime:
    """The first local time after the repeated stretch `moment` is in. APScheduler reads a local time
    without its fold, so asking it for "a second later" inside that stretch lands in the first pass
    again; it must be asked from beyond it."""
    zone = moment.tzinfo
    instant = moment.astimezone(UTC)
    for _ in range(24 * 60):
        instant += timedelta(minutes=1)
        local = instant.astimezone(zone)
        if (
            not _second_occurrence(local)
            and local.replace(fold=1).utcoffset() == local.replace(fold=0).utcoffset()
        ):
            return local
    return instant.astimezone(zone)


def parse_cron(expr: str, zone: ZoneInfo) -> LocalCronTrigger:
    try:
        return LocalCronTrigger(expr, zone)
    except ValueError as exc:
        raise ValueError(f"bad crontab {expr!r}: {exc}") from exc
