"""Reading an untrusted JSON or YAML document into plain data, with every bound checked before the
data is built.

A 391-byte YAML file can expand to a billion strings (aliases of aliases), a file of brackets can nest
deep enough to exhaust Python's stack, and a 5,000-digit number trips Python's integer-conversion
limit. So, before anything is built:

* nesting is at most MAX_DEPTH levels and a document at most MAX_NODES values;
* YAML aliases are allowed (a shared tool written once), at most MAX_ALIASES of them, and the
  document as its aliases expand stays within MAX_NODES values and MAX_EXPANDED_CHARS characters;
  an alias that contains itself is refused;
* a number is at most MAX_NUMBER_CHARS characters;
* a YAML value that its tag cannot build (month 13, an offset of 99 hours, `!!python/object`) is an
  error at its line, never an exception from deep inside the parser.

Every refusal is a DocumentRefused with the reason and, where known, the line and column.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 32  # a comparison file nests five levels; the rest is room, not a use
MAX_NODES = 250_000  # a thousand comparisons of eight reviews are about 110,000
MAX_ALIASES = 1_000
MAX_EXPANDED_CHARS = 20 * 1024 * 1024
MAX_NUMBER_CHARS = 32
NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


class DocumentRefused(Exception):
    """The document breaks a bound or cannot be read; `line` and `column` are 1-based where known."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None):
        super().__init__(reason)
        self.reason, self.line, self.column = reason, line, column


# --- JSON ------------------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def load_json(text: str) -> Any:
    """Plain data from JSON text within the bounds; json.JSONDecodeError for a syntax error."""
    _scan_json(text)

    def number(kind):
        def parse(literal: str):
            if len(literal) > MAX_NUMBER_CHARS:
                line, column = _position(text, text.find(literal))
                raise DocumentRefused(_long_number(literal), line, column)
            return kind(literal)

        return parse

    return json.loads(text, parse_int=number(int), parse_float=number(float))


def _scan_json(text: str) -> None:
    """Depth and value count from the brackets and commas outside strings, before json builds a thing."""
    depth = values = 0
    for match in _JSON_TOKEN.finditer(text):
        piece = match.group()
        if piece in ("[", "{"):
            depth += 1
            values += 1
            if depth > MAX_DEPTH:
                raise DocumentRefused(_too_deep(), *_position(text, match.start()))
        elif piece in ("]", "}"):
            depth -= 1
        elif piece == ",":
            values += 1
        if values > MAX_NODES:
            raise DocumentRefused(_too_many(), *_position(text, match.start()))


def _position(text: str, offset: int) -> tuple[int | None, int | None]:
    if offset < 0:
        return None, None
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# --- YAML ------------------------------------------------------------------------------------------------


_FAST = getattr(yaml, "CSafeLoader", None)  # libyaml, where PyYAML was built with it
_BASE_LOADER = _FAST or yaml.SafeLoader
_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


class _Loader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """PyYAML's safe loader (libyaml's parser where there is one), whose values that their tag
    cannot build become errors at their line."""

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # int("0x"), a month 13, bool "maybe": whatever the tag's builder says
            value = node.value if isinstance(node, ScalarNode) else node.tag
            kind = node.tag.rsplit(":", 1)[-1]
            raise ConstructorError(
                None, None, f"cannot read {str(value)[:80]!r} as {kind}: {exc}", node.start_mark
            ) from exc


def load_yaml(text: str) -> tuple[Any, Node | None]:
    """Plain data from YAML text within the bounds, and the document's node (for line numbers);
    yaml.YAMLError for a syntax error or a value that cannot be built.

    First the event stream (the parser is a state machine: no recursion, no values built) is
    counted for depth, values and aliases; only then are nodes composed (the composer recurses once
    per level), measured as their aliases would expand, and finally turned into data."""
    _scan_events(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_expansion(node)
        return loader.construct_document(node), node
    finally:
        loader.dispose()


def _scan_events(text: str) -> None:
    depth = values = aliases = 0
    for event in yaml.parse(text, Loader=_BASE_LOADER):
        if isinstance(event, _OPEN):
            depth += 1
            values += 1
            if depth > MAX_DEPTH:
                _refuse(_too_deep(), event.start_mark)
        elif isinstance(event, _CLOSE):
            depth -= 1
        elif isinstance(event, yaml.ScalarEvent):
            values += 1
        elif isinstance(event, yaml.AliasEvent):
            values += 1
            aliases += 1
            if aliases > MAX_ALIASES:
                _refuse(f"more than {MAX_ALIASES:,} aliases (*name); write the values out", event.start_mark)
        if values > MAX_NODES:
            _refuse(_too_many(), event.start_mark)


def _check_expansion(root: Node) -> None:
    """How big the document is once its aliases are expanded, counted over the shared nodes (each
    once, with memory), so a billion-laughs file is measured in microseconds, never expanded; and
    every number's length, before the constructor turns its digits into an int."""
    size: dict[int, tuple[int, int]] = {}  # id(node) -> (values, characters) when expanded
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            values, chars = 1, 0
            for child in _children(node):
                child_values, child_chars = size[id(child)]
                values, chars = values + child_values, chars + child_chars
            if values > MAX_NODES or chars > MAX_EXPANDED_CHARS:
                _refuse(
                    f"its aliases expand to more than {MAX_NODES:,} values or {MAX_EXPANDED_CHARS:,} "
                    "characters (an alias bomb?); write the values out",
                    node.start_mark,
                )
            size[key] = (values, chars)
            continue
        if key in size:
            continue
        if isinstance(node, ScalarNode):
            if node.tag in NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
                _refuse(_long_number(node.value), node.start_mark)
            size[key] = (1, len(node.value))
            continue
        if key in on_path:
            _refuse("an alias refers to a value that contains it", node.start_mark)
        on_path.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in on_path:
                _refuse("an alias refers to a value that contains it", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _refuse(reason: str, mark) -> None:
    raise DocumentRefused(reason, mark.line + 1 if mark else None, mark.column + 1 if mark else None)


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep"


def _too_many() -> str:
    return f"more than {MAX_NODES:,} values in one file; split it"


def _long_number(literal: str) -> str:
    shown = literal if len(literal) <= 20 else f"{literal[:12]}…"
    return (
        f"a number of {len(literal):,} characters ({shown}); numbers have at most {MAX_NUMBER_CHARS} "
        "(put text in quotes)"
    )
