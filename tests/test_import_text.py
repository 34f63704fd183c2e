"""Every string of an imported comparison is text a database can store and an email can carry: a
NUL, any other control character or a lone surrogate in any field is refused with file, place and
reason, and every URL is strictly an https link. The fields come from the seed (every string in it,
plus the optional URLs), so a new field is covered without editing this file. The real `newsletter
import` runs on the suite's database (on PostgreSQL a NUL once got as far as a DataError)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from newsletter.importing import ImportFailed, parse_text
from tests.commands import newsletter
from tests.conftest import TEST_KEY, seed_dict
from tests.databases import clean_env

# Control characters of every kind, and half of a UTF-16 pair (JSON's "\ud800" decodes to one).
BAD_TEXT = {
    "nul": "\x00",
    "escape": "\x1b[31m",
    "bell": "\x07",
    "del": "\x7f",
    "c1": "\x85",
    "surrogate": "\ud800",
}
BAD_URLS = {
    "space": "https://a b.example.com/",
    "space-in-path": "https://example.com/a b",
    "escaped-nul": "https://example.com/%00",
    "escaped-del": "https://example.com/x%7F",
    "nul": "https://example.com/\x00",
    "tab": "https://example.com/\tx",
    "http": "http://example.com/",
    "javascript": "javascript:alert(1)",
    "no-host": "https:///path",
    "user-info": "https://user:pass@example.com/",
    "bad-port": "https://example.com:99999/",
    "bad-escape": "https://example.com/%zz",
    "angle": "https://example.com/<script>",
    "non-ascii": "https://example.com/café",
    "hyphen-host": "https://-example.com/",
}
CONSTRAINED = {"slug", "reviewer_slug", "verdict", "tool", "published_at"}  # patterns and literals
URL_FIELDS = [("url",), ("tools", "left", "url"), ("tools", "right", "url")]


def string_fields(node, path=()) -> list[tuple]:
    """The path of every free-text string in the seed."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += string_fields(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += string_fields(value, (*path, index))
    elif isinstance(node, str) and path[-1] not in CONSTRAINED:
        found.append(path)
    return found


def with_value(path: tuple, value: str) -> dict:
    document = seed_dict()
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return document


def place_of(path: tuple) -> str:
    """How the import names a field: tools.left.name, reviews[3].quote."""
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else step)
    return text


FIELDS = string_fields(seed_dict())


def test_the_fields_are_found():
    places = {place_of(path) for path in FIELDS}
    assert {"title", "dek", "tools.left.name", "tools.right.description", "reviews[0].quote"} <= places
    assert len(FIELDS) >= 20


@pytest.mark.parametrize("kind", list(BAD_TEXT))
def test_a_control_character_or_lone_surrogate_in_any_field_is_refused_with_its_place(kind):
    for path in FIELDS:
        original = with_value(path, "x")
        text_value = copy.deepcopy(original)
        node = text_value
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = f"Before{BAD_TEXT[kind]}after"
        with pytest.raises(ImportFailed) as refused:
            parse_text(json.dumps(text_value), name="bad.json", is_yaml=False)
        problems = [str(problem) for problem in refused.value.problems]
        assert any(place_of(path) in problem for problem in problems), (path, problems)
        assert any("U+" in problem or "surrogate" in problem for problem in problems), problems


@pytest.mark.parametrize("case", list(BAD_URLS))
def test_every_url_field_is_strictly_an_https_link(case):
    for path in URL_FIELDS:
        with pytest.raises(ImportFailed) as refused:
            parse_text(json.dumps(with_value(path, BAD_URLS[case])), name="bad.json", is_yaml=False)
        problems = [str(problem) for problem in refused.value.problems]
        assert any(place_of(path) in problem for problem in problems), (case, path, problems)


def test_good_urls_still_pass():
    for url in (
        "https://example.com",
        "https://docs.example.com:8443/a/b?x=1&y=%20#top",
        "https://x.io/~a_b-c",
    ):
        assert parse_text(json.dumps(with_value(("url",), url)), name="ok.json", is_yaml=False)


def test_yaml_escapes_are_held_to_the_same_rules():
    for escape in ("\\0", "\\e", "\\x7f", "\\ud800", "\\N"):
        text = f'slug: a-vs-b\ndek: "before{escape}after"\n'
        with pytest.raises(ImportFailed) as refused:
            parse_text(text, name="bad.yaml", is_yaml=True)
        problems = [str(problem) for problem in refused.value.problems]
        assert any("dek" in problem or problem.startswith("bad.yaml:2:") for problem in problems), problems


def run(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(directory) | {"NEWSLETTER_SECRET_KEY": TEST_KEY, "COLUMNS": "200"}
    return newsletter(directory, env, *args)


def test_the_real_import_refuses_them_all_and_stores_nothing(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    files = []
    for kind, bad in BAD_TEXT.items():
        documents = []
        for index, path in enumerate(FIELDS[:10]):
            document = with_value(path, f"x{bad}y")
            document["slug"] = f"{kind}-case-{index}"
            documents.append(document)
        files.append(tmp_path / f"{kind}.json")
        files[-1].write_text(json.dumps(documents))
    urls = []
    for index, url in enumerate(BAD_URLS.values()):
        document = with_value(("url",), url)
        document["slug"] = f"url-case-{index}"
        urls.append(document)
    files.append(tmp_path / "urls.json")
    files[-1].write_text(json.dumps(urls))
    result = run(tmp_path, "import", *map(str, files))
    text = result.stdout + result.stderr
    assert result.returncode == 1, text
    assert "Traceback" not in text and "unexpected" not in text, text
    for file in files:
        assert str(file) in result.stderr, file
    assert result.stderr.count("\n") >= len(BAD_TEXT) * 10 + len(BAD_URLS)
    assert "\x00" not in text and "\x1b" not in text, "a control character reached the terminal"
    listed = run(tmp_path, "comparisons", "list", "--all")
    assert "case" not in listed.stdout, "something was stored"
    good = tmp_path / "good.json"
    good.write_text(json.dumps(seed_dict()))
    stored = run(tmp_path, "import", str(good))
    assert stored.returncode == 0, stored.stderr


def test_the_subscriber_csv_refuses_control_characters_and_surrogates_by_line(tmp_path):
    assert run(tmp_path, "init").returncode == 0
    rows = [f"a{bad}b@example.com" for bad in BAD_TEXT.values() if bad not in ("\ud800", "\x00")]
    readers = tmp_path / "readers.csv"
    readers.write_text("email,name\n" + "\n".join(f"{row},x" for row in rows) + "\n", encoding="utf-8")
    result = run(tmp_path, "subscribers", "import", str(readers))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    for line in range(2, 2 + len(rows)):
        assert f"line {line}:" in result.stderr, result.stderr
    assert "\x1b" not in result.stderr
    # A NUL byte anywhere (a name column too) is no CSV text: the file is refused at its first one.
    binary = tmp_path / "binary.csv"
    binary.write_text("email,name\nok@example.com,x\nalso@example.com,x\x00y\n", encoding="utf-8")
    result = run(tmp_path, "subscribers", "import", str(binary))
    assert result.returncode == 1 and "line 3:" in result.stderr and "NUL" in result.stderr, result.stderr
    assert "\x00" not in result.stderr
    surrogate = tmp_path / "surrogate.csv"
    surrogate.write_bytes(b"email\nok@example.com\na\xed\xa0\x80b@example.com\n")  # U+D800, CESU-8
    result = run(tmp_path, "subscribers", "import", str(surrogate))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "line 3: not UTF-8" in result.stderr, result.stderr
    assert "No subscribers." in run(tmp_path, "subscribers", "stats").stdout, "nothing was stored"
