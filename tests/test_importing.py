"""Importing comparisons: good files in both formats, updates by slug, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func
from sqlmodel import Session, select

from newsletter.content import import_files
from newsletter.importing import MAX_QUOTE_CHARS, ImportFailed
from newsletter.models import Comparison, Review, Reviewer, Tool, Vote
from tests.conftest import seed_dict


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def count(session: Session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def test_json_file_with_one_comparison_is_stored_whole(tmp_path, session, settings):
    summary = import_files(session, [write(tmp_path, "seed.json", seed_dict())], settings.zone)
    session.commit()

    assert summary.created == ["claude-haiku-open-weights-vs-gemini-2-5-flash-lite"]
    comparison = session.exec(select(Comparison)).one()
    assert comparison.title == "Claude Haiku Open Weights vs Gemini 2.5 Flash Lite"
    assert comparison.category == "Developer Tools"
    assert comparison.pinned is True
    assert {t.name for t in session.exec(select(Tool))} == {
        "Claude Haiku Open Weights",
        "Gemini 2.5 Flash Lite",
    }
    assert count(session, Review) == 8
    assert count(session, Reviewer) == 4


def test_yaml_file_with_a_list_is_stored(tmp_path, session, settings, samples):
    documents = [item.model_dump(mode="json", exclude_none=True) for item in samples]
    summary = import_files(session, [write(tmp_path, "all.yaml", documents)], settings.zone)
    session.commit()
    assert len(summary.created) == len(samples) >= 6
    assert count(session, Comparison) == len(samples)


def test_reimporting_a_slug_updates_it_without_duplicates(tmp_path, session, settings):
    document = seed_dict()
    import_files(session, [write(tmp_path, "a.json", document)], settings.zone)
    session.commit()
    document["dek"] = "A sharper dek."
    document["reviews"][0]["verdict"] = "skip"
    document["community"] = {"left": {"ship": 3, "skip": 1}}
    summary = import_files(session, [write(tmp_path, "b.yaml", document)], settings.zone)
    session.commit()

    assert summary.updated == [document["slug"]] and summary.created == []
    assert count(session, Comparison) == 1
    assert count(session, Tool) == 2
    assert count(session, Review) == 8
    assert session.exec(select(Comparison)).one().dek == "A sharper dek."
    assert count(session, Vote) == 4
    # The site's tally is replaced on re-import, not added to.
    import_files(session, [write(tmp_path, "c.yaml", document)], settings.zone)
    session.commit()
    assert count(session, Vote) == 4


def test_naive_publication_time_is_read_in_the_configured_zone(tmp_path, session, settings):
    document = seed_dict()
    document["published_at"] = "2026-11-23T00:30:00"  # Berlin is UTC+1 in November
    import_files(session, [write(tmp_path, "a.json", document)], settings.zone)
    session.commit()
    stored = session.exec(select(Comparison)).one().published_at
    assert stored.isoformat() == "2026-11-22T23:30:00+00:00"


def _bad(mutate) -> dict:
    document = seed_dict()
    mutate(document)
    return document


BAD_INPUTS = {
    "missing field": (
        lambda d: d["tools"]["left"].pop("tagline"),
        "tools.left.tagline",
        "required field is missing",
    ),
    "unknown tool side": (
        lambda d: d["tools"].update(middle=d["tools"]["left"]),
        "tools.middle",
        "unknown tool side 'middle'",
    ),
    "review of an unknown side": (
        lambda d: d["reviews"][2].update(tool="centre"),
        "reviews[2].tool",
        "unknown tool side 'centre'",
    ),
    "verdict other than ship or skip": (
        lambda d: d["reviews"][1].update(verdict="maybe"),
        "reviews[1].verdict",
        "verdict must be 'ship' or 'skip', not 'maybe'",
    ),
    "non-https link": (
        lambda d: d["tools"]["right"].update(url="http://ai.google.dev"),
        "tools.right.url",
        "must be an absolute https:// link",
    ),
    "a 5 MB quote": (
        lambda d: d["reviews"][0].update(quote="x" * (5 * 1024 * 1024)),
        "reviews[0].quote",
        f"at most {MAX_QUOTE_CHARS:,} are allowed",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_bad_input_names_file_place_and_reason_and_stores_nothing(tmp_path, engine, settings, case, suffix):
    mutate, place, reason = BAD_INPUTS[case]
    good = write(tmp_path, "good.json", _good_other())
    bad = write(tmp_path, f"bad{suffix}", _bad(mutate))

    with Session(engine) as session, pytest.raises(ImportFailed) as failure:
        import_files(session, [good, bad], settings.zone)

    message = str(failure.value)
    assert str(bad) in message
    assert place in message
    assert reason in message
    assert str(good) not in message
    with Session(engine) as session:
        assert count(session, Comparison) == 0, "nothing from a refused run may be stored"
        assert count(session, Tool) == 0


def test_yaml_problems_carry_the_line_number(tmp_path, session, settings):
    document = seed_dict()
    document["reviews"][3]["verdict"] = "nope"
    path = write(tmp_path, "bad.yaml", document)
    lines = path.read_text(encoding="utf-8").splitlines()
    expected = next(i for i, line in enumerate(lines, 1) if "verdict: nope" in line)
    with pytest.raises(ImportFailed) as failure:
        import_files(session, [path], settings.zone)
    assert failure.value.problems[0].line == expected
    assert f"{path}:{expected}:" in str(failure.value)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.json", '{"slug": ', "Expecting value"),
        ("broken.yaml", "slug: [unclosed", "expected"),
        ("empty.yaml", "", "the file is empty"),
        ("scalar.json", "42", "must be one comparison (a mapping) or a list of them"),
        ("notes.txt", "hello", "unsupported file type"),
    ],
)
def test_unreadable_documents_are_refused_with_a_reason(tmp_path, session, settings, name, content, reason):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFailed) as failure:
        import_files(session, [path], settings.zone)
    assert reason in str(failure.value)
    assert str(path) in str(failure.value)


def test_missing_file_is_refused(tmp_path, session, settings):
    with pytest.raises(ImportFailed, match="cannot read"):
        import_files(session, [tmp_path / "nope.json"], settings.zone)


def test_same_slug_in_two_files_of_one_run_is_refused(tmp_path, session, settings):
    first = write(tmp_path, "one.json", seed_dict())
    second = write(tmp_path, "two.yaml", seed_dict())
    with pytest.raises(ImportFailed, match="also in"):
        import_files(session, [first, second], settings.zone)


def test_same_tool_on_both_sides_is_refused(tmp_path, session, settings):
    document = seed_dict()
    document["tools"]["right"] = document["tools"]["left"]
    with pytest.raises(ImportFailed, match="left and right are the same tool"):
        import_files(session, [write(tmp_path, "a.json", document)], settings.zone)


def test_a_reviewer_reviewing_one_tool_twice_is_refused(tmp_path, session, settings):
    document = seed_dict()
    document["reviews"][2]["reviewer"] = document["reviews"][0]["reviewer"]
    with pytest.raises(ImportFailed, match="reviews the left tool more than once"):
        import_files(session, [write(tmp_path, "a.json", document)], settings.zone)


def test_line_breaks_in_single_line_fields_are_refused(tmp_path, session, settings):
    document = seed_dict()
    document["title"] = "Haiku vs Flash\r\nBcc: everyone@example.com"
    with pytest.raises(ImportFailed, match="single line"):
        import_files(session, [write(tmp_path, "a.json", document)], settings.zone)


def _good_other() -> dict:
    document = seed_dict()
    document["slug"] = "another-comparison"
    return document
