"""The weekly pick and composing the week's issue."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from newsletter.content import store_comparisons
from newsletter.curation import Week, pick
from newsletter.editions import ComposeOutcome, compose, issue_comparisons
from newsletter.models import Issue, IssueStatus
from tests.conftest import at

BERLIN = ZoneInfo("Europe/Berlin")


def comparison(
    samples, slug: str, published: str, *, left_ship: int = 2, right_ship: int = 4, pinned: bool = False
):
    """A variant of the seed with its own slug, time and panel verdicts (out of four per tool)."""
    seed = samples[0]
    reviews, seen = [], {"left": 0, "right": 0}
    for review in seed.reviews:
        wanted = left_ship if review.tool == "left" else right_ship
        verdict = "ship" if seen[review.tool] < wanted else "skip"
        seen[review.tool] += 1
        reviews.append(review.model_copy(update={"verdict": verdict}))
    return seed.model_copy(
        update={
            "slug": slug,
            "published_at": at(published),
            "pinned": pinned,
            "reviews": reviews,
            "title": slug,
        }
    )


def store(session, settings, *items):
    store_comparisons(session, items, settings.zone)
    session.commit()


def test_week_parses_formats_and_refuses_weeks_that_do_not_exist():
    assert Week.parse("2026-W48") == Week(2026, 48) == Week.parse("2026w48")
    assert Week.parse("2026-W48").label == "2026-W48"
    assert Week.parse("2020-W53").monday.isoformat() == "2020-12-28"
    assert Week.parse("2026-W53").monday.isoformat() == "2026-12-28"  # 2026 starts on a Thursday
    with pytest.raises(ValueError, match="has no ISO week 53"):
        Week.parse("2027-W53")
    with pytest.raises(ValueError, match="not an ISO week"):
        Week.parse("November")


def test_week_bounds_follow_local_midnight_across_daylight_saving_time():
    start, end = Week.parse("2026-W43").bounds(BERLIN)  # clocks go back on Sunday 25 October 2026
    assert start.isoformat() == "2026-10-18T22:00:00+00:00"
    assert end.isoformat() == "2026-10-25T23:00:00+00:00"
    assert end - start == timedelta(hours=169)
    start, end = Week.parse("2026-W13").bounds(BERLIN)  # clocks go forward on Sunday 29 March 2026
    assert end - start == timedelta(hours=167)


def test_week_edges_are_taken_in_the_configured_zone(session, settings, samples):
    store(
        session,
        settings,
        comparison(samples, "sunday-late-berlin", "2026-11-29T22:30:00Z"),  # Sun 23:30 in Berlin: week 48
        comparison(samples, "monday-early-berlin", "2026-11-29T23:10:00Z"),  # Mon 00:10 in Berlin: week 49
        comparison(samples, "monday-first-minute", "2026-11-22T23:00:00Z"),  # Mon 00:00 in Berlin: week 48
        comparison(samples, "sunday-before", "2026-11-22T22:59:59Z"),  # Sun 23:59:59 in Berlin: week 47
    )
    week48 = {c.slug for c in pick(session, Week.parse("2026-W48"), BERLIN, 10)}
    week49 = {c.slug for c in pick(session, Week.parse("2026-W49"), BERLIN, 10)}
    assert week48 == {"sunday-late-berlin", "monday-first-minute"}
    assert week49 == {"monday-early-berlin"}
    # In UTC the same rows fall differently: the zone is what decides.
    utc48 = {c.slug for c in pick(session, Week.parse("2026-W48"), ZoneInfo("UTC"), 10)}
    assert utc48 == {"sunday-late-berlin", "monday-early-berlin"}


def test_pins_first_then_most_split_panel_then_newest_and_at_most_n(session, settings, samples):
    store(
        session,
        settings,
        comparison(samples, "unanimous-newest", "2026-11-28T10:00:00Z", left_ship=4, right_ship=4),
        comparison(samples, "split-both", "2026-11-24T10:00:00Z", left_ship=2, right_ship=2),
        comparison(samples, "split-one-older", "2026-11-24T09:00:00Z", left_ship=2, right_ship=4),
        comparison(samples, "split-one-newer", "2026-11-26T09:00:00Z", left_ship=2, right_ship=0),
        comparison(
            samples, "pinned-unanimous", "2026-11-23T10:00:00Z", left_ship=0, right_ship=4, pinned=True
        ),
    )
    picked = [c.slug for c in pick(session, Week.parse("2026-W48"), BERLIN, 4)]
    assert picked == ["pinned-unanimous", "split-both", "split-one-newer", "split-one-older"]
    assert [c.slug for c in pick(session, Week.parse("2026-W48"), BERLIN, 2)] == picked[:2]


def test_comparisons_already_sent_in_another_issue_are_not_picked_again(session, settings, samples):
    store(session, settings, comparison(samples, "old-news", "2026-11-18T10:00:00Z"))
    sent = compose(session, Week.parse("2026-W47"), settings).issue
    sent.status = IssueStatus.SENT
    session.commit()
    # The comparison is re-dated into the next week (a re-import); it must not go out twice.
    store(
        session,
        settings,
        comparison(samples, "old-news", "2026-11-25T10:00:00Z"),
        comparison(samples, "fresh", "2026-11-25T11:00:00Z"),
    )
    assert [c.slug for c in pick(session, Week.parse("2026-W48"), BERLIN, 5)] == ["fresh"]


def test_compose_creates_then_refreshes_the_single_draft_of_a_week(session, settings, samples):
    week = Week.parse("2026-W48")
    store(session, settings, comparison(samples, "first", "2026-11-24T10:00:00Z"))
    created = compose(session, week, settings)
    session.commit()
    assert created.outcome == ComposeOutcome.CREATED
    assert [c.slug for c in issue_comparisons(session, created.issue)] == ["first"]

    store(session, settings, comparison(samples, "second", "2026-11-25T10:00:00Z", left_ship=2, right_ship=2))
    refreshed = compose(session, week, settings)
    session.commit()
    assert refreshed.outcome == ComposeOutcome.REFRESHED
    assert refreshed.issue.id == created.issue.id
    assert [c.slug for c in issue_comparisons(session, refreshed.issue)] == ["second", "first"]
    assert session.exec(select(func.count()).select_from(Issue)).one() == 1


def test_compose_leaves_an_issue_that_is_no_longer_a_draft_alone(session, settings, samples):
    week = Week.parse("2026-W48")
    store(session, settings, comparison(samples, "first", "2026-11-24T10:00:00Z"))
    issue = compose(session, week, settings).issue
    issue.status = IssueStatus.SENT
    session.commit()
    store(session, settings, comparison(samples, "late-arrival", "2026-11-27T10:00:00Z"))
    result = compose(session, week, settings)
    assert result.outcome == ComposeOutcome.UNCHANGED
    assert [c.slug for c in result.picks] == ["first"]


def test_an_empty_week_says_so_and_creates_nothing(session, settings):
    result = compose(session, Week.parse("2026-W10"), settings)
    session.commit()
    assert result.outcome == ComposeOutcome.EMPTY
    assert result.issue is None
    assert session.exec(select(func.count()).select_from(Issue)).one() == 0


def test_the_store_itself_refuses_a_second_issue_for_a_week(engine):
    with Session(engine) as session:
        session.add(Issue(week="2026-W48"))
        session.commit()
    with Session(engine) as session:
        session.add(Issue(week="2026-W48"))
        with pytest.raises(IntegrityError):
            session.commit()
