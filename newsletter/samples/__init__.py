"""Sample content shipped inside the package: the seed comparison page and more written for demos.

Loading re-dates every sample into the current ISO week (configured time zone), between Monday 00:00
and now, so a fresh store always has a week to compose.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from zoneinfo import ZoneInfo

from sqlmodel import Session

from newsletter.content import ImportSummary, store_comparisons
from newsletter.curation import Week
from newsletter.importing import ComparisonIn, parse_text

SAMPLE_FILE = "comparisons.yaml"


def sample_text() -> str:
    return resources.files(__package__).joinpath(SAMPLE_FILE).read_text(encoding="utf-8")


def sample_comparisons() -> list[ComparisonIn]:
    return parse_text(sample_text(), name=f"newsletter/samples/{SAMPLE_FILE}", is_yaml=True)


def dated_into_week(items: list[ComparisonIn], now: datetime, zone: ZoneInfo) -> list[ComparisonIn]:
    """Spread the samples over [Monday 00:00, now] of now's week, newest first, keeping their order."""
    start, _ = Week.containing(now, zone).bounds(zone)
    span = now - start
    count = len(items)
    return [
        item.model_copy(update={"published_at": now - span * index / count})
        for index, item in enumerate(items)
    ]


def load_samples(session: Session, zone: ZoneInfo, now: datetime) -> ImportSummary:
    return store_comparisons(session, dated_into_week(sample_comparisons(), now, zone), zone)
