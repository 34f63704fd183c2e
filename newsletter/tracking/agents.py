"""User-agent classes: which kind of client sent a hit, from the maintained list in agents.toml.

Only the class is stored with a hit, never the agent itself. The list is read once per process; a
hit's class is one regex search (cached per agent string: scanners send the same one thousands of
times a minute).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

AGENTS_FILE = Path(__file__).with_name("agents.toml")
BROWSER = "browser"  # no entry matched: a person's browser, as far as the agent says
NONE = "none"  # no User-Agent header at all
MAX_AGENT_CHARS = 512  # an agent longer than this is judged by its first 512 characters


@dataclass(frozen=True)
class AgentList:
    pattern: re.Pattern[str]
    classes_by_match: dict[str, str]
    exact: dict[str, str]
    machine_for: dict[str, frozenset[str]]

    def classify(self, agent: str | None) -> str:
        if not agent or not agent.strip():
            return NONE
        agent = agent[:MAX_AGENT_CHARS]
        folded = agent.strip().casefold()
        if folded in self.exact:
            return self.exact[folded]
        match = self.pattern.search(folded)
        return self.classes_by_match[match[0]] if match else BROWSER

    def is_machine(self, agent_class: str, kind: str) -> bool:
        """Whether this class of agent makes a hit of `kind` ("click" or "open") a machine's."""
        return kind in self.machine_for.get(agent_class, frozenset())


def load(path: Path = AGENTS_FILE) -> AgentList:
    """The list in `path`; ValueError naming the entry when one is not right."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    classes = {name: frozenset(kinds) for name, kinds in data.get("classes", {}).items()}
    classes[NONE] = classes.get(NONE, frozenset({"click", "open"}))
    exact: dict[str, str] = {}
    substrings: dict[str, str] = {}
    for place, entry in enumerate(data.get("agent", []), start=1):
        match, kind = entry.get("match"), entry.get("class")
        if not isinstance(match, str) or not match.strip() or kind not in classes or not entry.get("source"):
            raise ValueError(f"{path.name}: agent {place} needs a match, a known class and a source")
        target = exact if entry.get("exact") else substrings
        target.setdefault(match.strip().casefold(), kind)
    pattern = re.compile("|".join(re.escape(key) for key in substrings) or r"(?!)")
    return AgentList(pattern, substrings, exact, classes)


@cache
def default_list() -> AgentList:
    return load()


@lru_cache(maxsize=4096)
def agent_class(agent: str | None) -> str:
    """The class of a User-Agent header by the default list."""
    return default_list().classify(agent)
