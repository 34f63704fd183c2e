"""Which tool a name means: non-Latin names keep slugs of their own, and two different tools (or
reviewers) on one slug are refused, within one run and against the store, never silently merged."""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pytest
from sqlmodel import Session, select

from newsletter.content import import_files, store_comparisons
from newsletter.identity import name_key, slugify
from newsletter.importing import SLUG_PATTERN, ImportFailed, parse_text
from newsletter.models import Comparison, Review, Reviewer, Tool
from tests.commands import run
from tests.conftest import seed_dict


def write(tmp_path: Path, name: str, document) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def comparison(slug: str, left: str, right: str = "Gemini 2.5 Flash Lite", **left_fields) -> dict:
    document = seed_dict()
    document["slug"] = slug
    document.pop("title", None)
    for side, name in (("left", left), ("right", right)):
        document["tools"][side].pop("slug", None)
        document["tools"][side]["name"] = name
    document["tools"]["left"].update(left_fields)
    return document


# --- slugs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Gemini 2.5 Flash Lite", "gemini-2-5-flash-lite"),
        ("Claude Haiku Open Weights", "claude-haiku-open-weights"),
        ("Bolt.new", "bolt-new"),
        ("GPT-4o mini TTS", "gpt-4o-mini-tts"),
        ("Café Crème", "cafe-creme"),
        ("Ångström", "angstrom"),
    ],
)
def test_names_that_fold_to_ascii_keep_the_slugs_they_always_had(name, slug):
    assert slugify(name) == slug


@pytest.mark.parametrize("name", ["قلم Pen", "Straße", "Pen 🚀", "Łódź AI", "Ω Pen"])
def test_names_whose_letters_ascii_cannot_hold_get_a_stable_hash(name):
    slug = slugify(name)
    assert re.fullmatch(r"(?:[a-z0-9]+-)*[0-9a-f]{8}", slug), slug
    assert slug == slugify(name), "stable"
    assert slug == slugify(unicodedata.normalize("NFD", name)) == slugify(f" {name}  ")
    assert slug != slugify(re.sub(r"[^\x00-\x7f]", "", name))


def test_the_two_pens_of_the_report_get_two_slugs():
    assert slugify("Pen") == "pen"
    assert slugify("قلم Pen").startswith("pen-") and slugify("قلم Pen") != "pen"


SCRIPTS = ["قلم", "ペン", "钢笔", "펜", "Перо", "עט", "कलम", "ปากกา", "Στυλό", "🖊️", "™", "ℌ"]


@pytest.mark.parametrize("word", SCRIPTS)
def test_every_script_gives_a_valid_slug_of_its_own(word):
    slugs = {slugify(f"{word} {n}") for n in range(20)} | {slugify(word)}
    assert len(slugs) == 21, "no two of these names share a slug"
    for slug in slugs:
        assert re.fullmatch(SLUG_PATTERN, slug) and len(slug) <= 120, slug


def test_a_long_name_keeps_within_the_column():
    assert len(slugify("ペン " * 200)) <= 120 and len(slugify("pen " * 200)) <= 120


# --- tools: clash or update ----------------------------------------------------------------------------


def test_two_tools_reducing_to_one_slug_in_one_run_are_refused_naming_both(tmp_path, engine, settings):
    first = write(tmp_path, "one.json", comparison("c-plus-plus-vs-gemini", "C++"))
    second = write(tmp_path, "two.json", comparison("c-vs-gemini", "C"))
    with Session(engine) as session, pytest.raises(ImportFailed) as failure:
        import_files(session, [first, second], settings.zone)
    message = str(failure.value)
    assert str(second) in message and "tools.left.name" in message
    assert "'C'" in message and "'C++'" in message and str(first) in message
    assert "slug 'c'" in message and "`slug:`" in message
    with Session(engine) as session:
        assert session.exec(select(Tool)).all() == []


def test_a_derived_slug_the_store_gives_to_another_name_is_refused(tmp_path, engine, settings):
    """A store written before non-Latin names got their hash: `pen` is قلم Pen's row."""
    with Session(engine) as session:
        session.add(
            Tool(slug="pen", name="قلم Pen", category="x", tagline="t", description="d", entry_price="Free")
        )
        session.commit()
    path = write(tmp_path, "pen.json", comparison("pen-vs-gemini", "Pen"))
    with Session(engine) as session, pytest.raises(ImportFailed) as failure:
        import_files(session, [path], settings.zone)
    message = str(failure.value)
    assert str(path) in message and "tools.left.name" in message
    assert "'Pen'" in message and "'قلم Pen'" in message and "`slug: pen`" in message
    with Session(engine) as session:
        assert session.exec(select(Comparison)).all() == []
        assert session.exec(select(Tool.name)).all() == ["قلم Pen"]

    # The editor says it is the same tool: an explicit slug renames it.
    renamed = comparison("pen-vs-gemini", "Pen")
    renamed["tools"]["left"]["slug"] = "pen"
    with Session(engine) as session:
        import_files(session, [write(tmp_path, "renamed.json", renamed)], settings.zone)
        session.commit()
        assert session.exec(select(Tool.name).where(Tool.slug == "pen")).one() == "Pen"


def test_the_reported_case_two_pens_keep_two_cards(tmp_path, engine, settings):
    arabic = write(tmp_path, "a.json", comparison("qalam-pen-vs-gemini", "قلم Pen", tagline="The Arabic pen"))
    latin = write(tmp_path, "b.json", comparison("pen-vs-gemini", "Pen", tagline="The Latin pen"))
    with Session(engine) as session:
        import_files(session, [arabic], settings.zone)
        session.commit()
        import_files(session, [latin], settings.zone)
        session.commit()
        again = comparison("pen-vs-gemini", "Pen", tagline="The Latin pen, updated")
        import_files(session, [write(tmp_path, "c.json", again)], settings.zone)
        session.commit()
        taglines = dict(session.exec(select(Tool.name, Tool.tagline)).all())
    assert taglines["قلم Pen"] == "The Arabic pen", "importing one never rewrites the other's card"
    assert taglines["Pen"] == "The Latin pen, updated"


@pytest.mark.parametrize(
    "spelling", ["Gemini 2.5 Flash Lite", "gemini 2.5 flash lite", "Gemini  2.5 Flash Lite "]
)
def test_the_same_name_again_is_an_update_not_a_clash(tmp_path, engine, settings, spelling):
    with Session(engine) as session:
        import_files(session, [write(tmp_path, "a.json", seed_dict())], settings.zone)
        session.commit()
        document = seed_dict()
        document["tools"]["right"].pop("slug", None)
        document["tools"]["right"]["name"] = spelling
        document["tools"]["right"]["tagline"] = "A new tagline"
        import_files(session, [write(tmp_path, "b.json", document)], settings.zone)
        session.commit()
        tool = session.exec(select(Tool).where(Tool.slug == "gemini-2-5-flash-lite")).one()
        assert tool.tagline == "A new tagline"
        assert len(session.exec(select(Tool)).all()) == 2


def test_two_spellings_of_one_tool_are_a_clash_until_the_file_says_which(tmp_path, engine, settings):
    with Session(engine) as session:
        import_files(session, [write(tmp_path, "a.json", seed_dict())], settings.zone)
        session.commit()
    document = seed_dict()
    document["tools"]["right"].pop("slug", None)
    document["tools"]["right"]["name"] = "Gemini 2.5 Flash-Lite"
    with (
        Session(engine) as session,
        pytest.raises(ImportFailed, match=r"already gives to 'Gemini 2\.5 Flash Lite'"),
    ):
        import_files(session, [write(tmp_path, "b.json", document)], settings.zone)


def test_storing_without_the_import_path_still_refuses_a_clash(engine, settings, samples):
    """`store_comparisons` (the samples use it) keeps the rule too."""
    one = parse_text(json.dumps(comparison("c-plus-plus-vs-gemini", "C++")), name="a.json", is_yaml=False)
    two = parse_text(json.dumps(comparison("c-vs-gemini", "C")), name="b.json", is_yaml=False)
    with Session(engine) as session:
        store_comparisons(session, one, settings.zone)
        session.commit()
        with pytest.raises(ImportFailed, match="'C'"):
            store_comparisons(session, two, settings.zone)


# --- reviewers: the same rule ----------------------------------------------------------------------------


def with_reviewer(slug: str, name: str, reviewer_slug: str | None = None) -> dict:
    document = seed_dict()
    document["slug"] = slug
    for review in document["reviews"][:2]:  # The Builder's two reviews, left and right
        review["reviewer"] = name
        if reviewer_slug:
            review["reviewer_slug"] = reviewer_slug
    return document


def test_two_reviewers_on_one_slug_are_refused_and_reviewer_slug_keeps_them_apart(tmp_path, engine, settings):
    with Session(engine) as session:
        import_files(session, [write(tmp_path, "a.json", with_reviewer("first", "Ana-Maria"))], settings.zone)
        session.commit()
    other = write(tmp_path, "b.json", with_reviewer("second", "Ana Maria"))
    with Session(engine) as session, pytest.raises(ImportFailed) as failure:
        import_files(session, [other], settings.zone)
    message = str(failure.value)
    assert "reviewer 'Ana Maria'" in message and "'Ana-Maria'" in message and "reviewer_slug" in message
    assert "reviews[0].reviewer" in message

    apart = write(tmp_path, "c.json", with_reviewer("second", "Ana Maria", reviewer_slug="ana-maria-2"))
    with Session(engine) as session:
        import_files(session, [apart], settings.zone)
        session.commit()
        names = dict(session.exec(select(Reviewer.slug, Reviewer.name)).all())
    assert names["ana-maria"] == "Ana-Maria" and names["ana-maria-2"] == "Ana Maria"


def test_non_latin_reviewers_are_kept_apart(tmp_path, engine, settings):
    with Session(engine) as session:
        import_files(
            session, [write(tmp_path, "a.json", with_reviewer("first", "محمد Builder"))], settings.zone
        )
        import_files(session, [write(tmp_path, "b.json", with_reviewer("second", "Builder"))], settings.zone)
        session.commit()
        by_name = {
            reviewer.name: len(session.exec(select(Review).where(Review.reviewer_id == reviewer.id)).all())
            for reviewer in session.exec(select(Reviewer))
        }
    assert by_name["محمد Builder"] == 2 and by_name["Builder"] == 2


def test_a_clash_through_the_real_command_names_file_place_both_names_and_the_fix(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    first = write(tmp_path, "one.json", comparison("c-plus-plus-vs-gemini", "C++"))
    second = write(tmp_path, "two.json", comparison("c-vs-gemini", "C"))
    result = run(tmp_path, "import", str(first), str(second))
    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "nothing was stored" in message and "two.json" in message and "tools.left.name" in message
    assert "'C'" in message and "'C++'" in message and "`slug:`" in message
    assert "Traceback" not in message
    assert "No comparisons." in run(tmp_path, "comparisons", "list", "--all").stdout


def test_name_key_is_what_identity_compares():
    assert name_key("  Gemini   2.5 FLASH lite ") == name_key("gemini 2.5 flash lite")
    assert name_key("ｐｅｎ") == name_key("pen")  # full-width letters are the same letters
    assert name_key("Pen") != name_key("قلم Pen")
