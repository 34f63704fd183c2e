"""Hostile import files: every one is refused with file, place and reason, quickly, and nothing is
stored. The battery is generated (alias bombs of several shapes, nesting from 33 to 100,000 levels,
huge numbers in every numeric field, odd dates, unsafe tags); each case runs in a forked child with a
deadline, so a hang fails in seconds instead of hanging the suite. The four reported files also go
through a real `newsletter import` process."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func
from sqlmodel import Session, select

from newsletter import documents
from newsletter.content import import_files
from newsletter.importing import ImportFailed, parse_text
from newsletter.models import Comparison, Reviewer, Tool
from tests.commands import run
from tests.conftest import seed_dict

DEADLINE = 20.0  # seconds; every case here finishes in well under one


def _in_child(connection, text: str, name: str, is_yaml: bool) -> None:
    try:
        items = parse_text(text, name=name, is_yaml=is_yaml)
        connection.send(("accepted", [item.slug for item in items]))
    except ImportFailed as failed:
        connection.send(("refused", [str(problem) for problem in failed.problems]))
    except BaseException as exc:
        connection.send(("crashed", [f"{type(exc).__name__}: {str(exc)[:300]}"]))


def outcome(text: str, *, yaml_file: bool) -> tuple[str, list[str]]:
    """(accepted | refused | crashed, details), from a forked child killed at the deadline."""
    name = "hostile.yaml" if yaml_file else "hostile.json"
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_in_child, args=(sender, text, name, yaml_file))
    started = time.monotonic()
    child.start()
    try:
        if not receiver.poll(DEADLINE):
            pytest.fail(f"parsing did not finish within {DEADLINE:.0f} s (a hang)")
        return receiver.recv()
    finally:
        child.kill()
        child.join()
        assert time.monotonic() - started < DEADLINE + 5


def refused(text: str, *, yaml_file: bool, reason: str, line: bool = True) -> list[str]:
    kind, details = outcome(text, yaml_file=yaml_file)
    assert kind == "refused", (kind, details)
    assert any(reason in problem for problem in details), details
    name = "hostile.yaml" if yaml_file else "hostile.json"
    assert all(problem.startswith(name) for problem in details), details
    if line:
        assert any(problem.startswith(f"{name}:") for problem in details), f"no line number: {details}"
    return details


def as_yaml(document) -> str:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


# --- alias bombs ---------------------------------------------------------------------------------------


def list_bomb(width: int, depth: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def mapping_bomb(width: int, depth: int) -> str:
    lines = ["a0: &a0 {" + ", ".join(f"k{j}: lol" for j in range(width)) + "}"]
    lines += [
        f"a{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(width)) + "}" for i in range(1, depth)
    ]
    return "\n".join(lines) + "\n"


def merge_bomb(width: int, depth: int) -> str:
    """Merge keys (`<<`) that each pull the level below in, plus its aliases as values."""
    lines = ["a0: &a0 {" + ", ".join(f"k{j}: lol" for j in range(width)) + "}"]
    for i in range(1, depth):
        values = ", ".join(f"m{i}_{j}: *a{i - 1}" for j in range(width))
        lines.append(f"a{i}: &a{i} {{<<: *a{i - 1}, {values}}}")
    return "\n".join(lines) + "\n"


def bomb_in_a_comparison(width: int, depth: int) -> str:
    """The bomb hidden in a real comparison: the dek is a list of lists of lols."""
    document = seed_dict()
    text = as_yaml(document)
    anchors = [f"x0: &x0 [{', '.join(['lol'] * width)}]"]
    anchors += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * width)}]" for i in range(1, depth)]
    return "_anchors: {" + ", ".join(anchors) + "}\n" + text


BOMBS = {
    **{f"list-{w}x{d}": (list_bomb, w, d) for w, d in ((9, 6), (9, 9), (30, 5), (2, 40))},
    **{f"mapping-{w}x{d}": (mapping_bomb, w, d) for w, d in ((9, 6), (20, 5))},
    **{f"merge-{w}x{d}": (merge_bomb, w, d) for w, d in ((9, 6), (16, 5))},
    "inside-a-comparison": (bomb_in_a_comparison, 9, 7),
}


@pytest.mark.parametrize("case", BOMBS, ids=list(BOMBS))
def test_alias_bombs_are_refused_without_being_expanded(case):
    build, width, depth = BOMBS[case]
    text = build(width, depth)
    assert len(text.encode()) < 20_000
    details = refused(text, yaml_file=True, reason="", line=True)
    assert any(
        "aliases expand" in p or "nested more than" in p or "more than 1,000 aliases" in p for p in details
    ), details


def test_the_reported_391_byte_bomb_is_refused_at_its_line():
    text = list_bomb(9, 6)
    details = refused(text, yaml_file=True, reason="aliases expand to more than")
    assert details[0].startswith("hostile.yaml:")


@pytest.mark.parametrize(
    "text",
    ["&a [*a]", "&m {k: *m}", "&a [1, [2, [3, *a]]]", "root: &r {child: {grandchild: *r}}"],
    ids=["list", "mapping", "deep-list", "deep-mapping"],
)
def test_an_alias_that_contains_itself_is_refused(text):
    refused(text, yaml_file=True, reason="an alias refers to a value that contains it")


def test_a_long_string_repeated_by_aliases_is_refused():
    text = f"s: &s {'x' * 400_000}\nmany: [{', '.join(['*s'] * 60)}]\n"
    refused(text, yaml_file=True, reason="characters (an alias bomb?)")


def test_too_many_aliases_are_refused():
    text = "v: &v 1\nmany: [" + ", ".join(["*v"] * (documents.MAX_ALIASES + 1)) + "]\n"
    refused(text, yaml_file=True, reason=f"more than {documents.MAX_ALIASES:,} aliases")


def test_a_few_aliases_for_a_shared_tool_are_fine(tmp_path, engine, settings):
    """Aliases have honest uses: one tool written once and used by two comparisons, the second
    time through a merge key that adds a field."""
    first, second = seed_dict(), seed_dict()
    second["slug"] = "another-comparison"
    second["tools"]["left"] = first["tools"]["left"]  # one object: safe_dump writes &id001 / *id001
    text = as_yaml([first, second])
    assert "&id001" in text and "left: *id001" in text
    path = tmp_path / "shared.yaml"
    path.write_text(text.replace("left: *id001", "left: {<<: *id001, vendor: Anthropic}"), encoding="utf-8")
    with Session(engine) as session:
        summary = import_files(session, [path], settings.zone)
        session.commit()
        assert summary.total == 2
        assert session.exec(select(func.count()).select_from(Tool)).one() == 2


# --- nesting -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [documents.MAX_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_deep_nesting_is_refused_before_it_is_built(depth, yaml_file):
    text = "[" * depth + "]" * depth
    refused(text, yaml_file=yaml_file, reason="nest")


@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_mappings_nested_deep_inside_a_comparison_are_refused(yaml_file):
    nested = '{"k": ' * 1_000 + '"x"' + "}" * 1_000  # valid JSON and valid YAML flow style
    text = _with_raw_number(seed_dict(), lambda d, v: d.update(dek=v), nested, yaml_file)
    refused(text, yaml_file=yaml_file, reason="nest")


def test_block_style_yaml_nested_a_thousand_deep_is_refused():
    text = "".join(f"{'  ' * level}k:\n" for level in range(1_000)) + "  " * 1_000 + "v\n"
    refused(text, yaml_file=True, reason="nest")


def test_nesting_at_the_bound_is_not_a_depth_error():
    depth = documents.MAX_DEPTH
    kind, details = outcome("[" * depth + "]" * depth, yaml_file=False)
    assert kind == "refused" and not any("nest" in p for p in details), details


@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_too_many_values_in_one_file_are_refused(yaml_file):
    text = "[" + ",".join(["0"] * (documents.MAX_NODES + 10)) + "]"
    refused(text, yaml_file=yaml_file, reason="values in one file")


def test_more_comparisons_than_a_file_may_hold_are_refused_with_a_bounded_list_of_problems():
    kind, details = outcome(json.dumps([{}] * 1_001), yaml_file=False)
    assert kind == "refused" and any("at most 1000 items" in p for p in details), details
    kind, details = outcome(json.dumps([{}] * 900), yaml_file=False)
    assert kind == "refused" and len(details) <= 51 and "and more problems" in details[-1], details[-3:]


# --- numbers -------------------------------------------------------------------------------------------

NUMERIC_FIELDS = {
    "community.left.ship": lambda d, v: d.update(community={"left": {"ship": v}}),
    "community.left.skip": lambda d, v: d.update(community={"left": {"skip": v}}),
    "community.right.ship": lambda d, v: d.update(community={"right": {"ship": v}}),
    "community.right.skip": lambda d, v: d.update(community={"right": {"skip": v}}),
    "pinned": lambda d, v: d.update(pinned=v),
    "published_at": lambda d, v: d.update(published_at=v),
    "a text field (tools.left.name)": lambda d, v: d["tools"]["left"].update(name=v),
}
HUGE = {
    "5000 digits": "9" * 5000,
    "negative": "-" + "9" * 5000,
    "float": "1" * 5000 + ".5",
    "exponent mantissa": "1." + "0" * 4000 + "e+5",
}


def _with_raw_number(document: dict, field, literal: str, yaml_file: bool) -> str:
    marker = "__NUMBER__"
    field(document, marker)
    text = as_yaml(document) if yaml_file else json.dumps(document)
    quoted = marker if yaml_file else f'"{marker}"'
    assert quoted in text
    return text.replace(quoted, literal)


@pytest.mark.parametrize("number", HUGE, ids=list(HUGE))
@pytest.mark.parametrize("field", NUMERIC_FIELDS, ids=list(NUMERIC_FIELDS))
@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_a_huge_number_in_any_field_is_refused(field, number, yaml_file):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS[field], HUGE[number], yaml_file)
    refused(text, yaml_file=yaml_file, reason=f"numbers have at most {documents.MAX_NUMBER_CHARS}")


@pytest.mark.parametrize(
    "literal", ["0x" + "f" * 5000, "0b" + "1" * 5000, "0" + "7" * 5000, "1_" * 2500 + "1"]
)
def test_yaml_integer_forms_of_any_length_are_refused(literal):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS["community.left.ship"], literal, True)
    refused(text, yaml_file=True, reason="numbers have at most")


@pytest.mark.parametrize("literal", ["1e+999999", "-1e+999999", "1.0e+400"])
@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_a_short_number_out_of_range_is_a_field_error_not_a_crash(literal, yaml_file):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS["community.left.ship"], literal, yaml_file)
    kind, details = outcome(text, yaml_file=yaml_file)
    assert kind == "refused" and any("community.left.ship" in p for p in details), details


# --- dates ---------------------------------------------------------------------------------------------

BAD_DATES = {
    "9999-12-31T23:30:00-14:00": "cannot be converted to UTC",
    "0001-01-01T00:00:00+14:00": "cannot be converted to UTC",
    "9999-12-31T23:59:59Z": "outside 2000-01-01 .. 2099-12-31",
    "1999-12-31T23:59:59Z": "outside 2000-01-01 .. 2099-12-31",
    "2100-01-01T00:00:00Z": "outside 2000-01-01 .. 2099-12-31",
    "1970-01-01T00:00:00": "outside 2000-01-01 .. 2099-12-31",
    "10000-01-01T00:00:00Z": "published_at",
    "2026-02-30T09:00:00Z": "published_at",
    "2026-11-23T09:00:00+25:00": "published_at",
    "not a date": "published_at",
}


@pytest.mark.parametrize("value", BAD_DATES, ids=list(BAD_DATES))
@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_an_odd_publication_time_is_refused_at_its_field(value, yaml_file):
    document = seed_dict()
    document["published_at"] = value
    text = as_yaml(document) if yaml_file else json.dumps(document)
    details = refused(text, yaml_file=yaml_file, reason=BAD_DATES[value], line=yaml_file)
    assert any("published_at" in p for p in details), details


@pytest.mark.parametrize(
    "literal",
    [
        "9999-12-31T23:30:00-14:00",
        "0001-01-01 00:00:00 +14:00",
        "2026-13-45",
        "2026-11-23T09:00:00+99:00",
        "1999-12-31",
        "2100-01-01",
    ],
)
def test_unquoted_yaml_timestamps_out_of_range_or_impossible_are_refused_at_their_line(literal):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS["published_at"], literal, True)
    refused(text, yaml_file=True, reason="")


@pytest.mark.parametrize("stamp", [4_102_444_800, -1, 0, 10**20, 946_684_799])
@pytest.mark.parametrize("yaml_file", [False, True], ids=["json", "yaml"])
def test_publication_times_as_numbers_outside_the_window_are_refused(stamp, yaml_file):
    document = seed_dict()
    document["published_at"] = stamp
    text = as_yaml(document) if yaml_file else json.dumps(document)
    details = refused(text, yaml_file=yaml_file, reason="published_at", line=yaml_file)
    assert details


@pytest.mark.parametrize(
    "value",
    ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59Z", "2026-11-23T00:30:00", "2026-11-23T09:00:00+14:00"],
)
def test_publication_times_inside_the_window_are_accepted(value):
    document = seed_dict()
    document["published_at"] = value
    assert outcome(json.dumps(document), yaml_file=False)[0] == "accepted"


# --- tags ------------------------------------------------------------------------------------------------

UNSAFE_TAGS = [
    "!!python/object:os.system {}",
    "!!python/object/apply:os.system ['touch /tmp/pwned-by-import']",
    "!!python/object/new:os.system ['touch /tmp/pwned-by-import']",
    "!!python/name:os.system ''",
    "!!python/module:os ''",
    "!!python/tuple [1, 2]",
]


@pytest.mark.parametrize("tag", UNSAFE_TAGS)
def test_python_tags_are_refused(tag):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS["a text field (tools.left.name)"], tag, True)
    refused(text, yaml_file=True, reason="could not determine a constructor")
    assert not Path("/tmp/pwned-by-import").exists()


@pytest.mark.parametrize(
    "tag",
    ["!!int abc", "!!float abc", "!!timestamp 2026-13-01", "!!binary '%%%'", "!!bool maybe", "!!int 0x"],
)
def test_a_value_its_own_tag_cannot_build_is_refused_at_its_line(tag):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS["community.left.ship"], tag, True)
    refused(text, yaml_file=True, reason="")


@pytest.mark.parametrize("tag", ["!!set {a, b}", "!!omap [{a: 1}]", "!!binary aGVsbG8=", "!!str 12"])
def test_other_safe_tags_end_in_a_field_error_or_are_accepted_never_a_crash(tag):
    text = _with_raw_number(seed_dict(), NUMERIC_FIELDS["a text field (tools.left.name)"], tag, True)
    assert outcome(text, yaml_file=True)[0] in ("refused", "accepted")


# --- through the real command ----------------------------------------------------------------------------


def _store_is_empty(engine) -> bool:
    with Session(engine) as session:
        return all(
            session.exec(select(func.count()).select_from(model)).one() == 0
            for model in (Comparison, Tool, Reviewer)
        )


REPORTED = {
    "bomb.yaml": (lambda: list_bomb(9, 6), "aliases expand"),
    "deep.json": (lambda: "[" * 100_000 + "]" * 100_000, "nested more than"),
    "deep.yaml": (lambda: "[" * 100_000 + "]" * 100_000, "nest"),
    "digits.json": (
        lambda: _with_raw_number(seed_dict(), NUMERIC_FIELDS["community.left.ship"], "9" * 5000, False),
        "a number of 5,000 characters",
    ),
    "late.yaml": (
        lambda: as_yaml({**seed_dict(), "published_at": "9999-12-31T23:30:00-14:00"}),
        "cannot be converted to UTC",
    ),
    "tag.yaml": (
        lambda: _with_raw_number(
            seed_dict(), NUMERIC_FIELDS["a text field (tools.left.name)"], UNSAFE_TAGS[1], True
        ),
        "could not determine a constructor",
    ),
}


@pytest.mark.parametrize("name", REPORTED, ids=list(REPORTED))
def test_newsletter_import_refuses_the_reported_files_quickly_and_stores_nothing(tmp_path, engine, name):
    build, reason = REPORTED[name]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(seed_dict()), encoding="utf-8")
    bad = tmp_path / name
    bad.write_text(build(), encoding="utf-8")
    assert name != "bomb.yaml" or len(bad.read_bytes()) < 400
    result = run(tmp_path, "import", str(good), str(bad))  # a 120 s timeout: a hang fails the test
    assert result.returncode == 1, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "nothing was stored" in message and reason in message, message
    assert f"{bad}:" in message, "the file and its line"
    assert str(good) not in message and "Traceback" not in message
    assert _store_is_empty(engine)
