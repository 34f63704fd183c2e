"""axe-core, injected into a page that Chromium (Playwright) has open: the accessibility faults it finds.

axe-core is an npm package pinned in tests/package.json; `make test` and `.ci/run` install it with
`npm ci --prefix tests` (tests/node_modules is git-ignored). A missing install fails the test with
that command. Email HTML is not a web page, so the two rules that look for a page's landmarks can be switched
off for it (`EMAIL_RULES_OFF`), and only for it: every other rule, the first-level heading's
included, holds for an email as for a page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

AXE_SCRIPT = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
EMAIL_RULES_OFF = ("region", "landmark-one-main")

_RUN = """async (off) => {
    const rules = Object.fromEntries(off.map((id) => [id, { enabled: false }]));
    const result = await axe.run(document, { rules, resultTypes: ["violations"] });
    return { version: axe.version, violations: result.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(" "), summary: n.failureSummary })),
    })) };
}"""


def axe_script() -> Path:
    if not AXE_SCRIPT.is_file():
        pytest.fail(f"axe-core is not installed at {AXE_SCRIPT}; install it with: npm ci --prefix tests")
    return AXE_SCRIPT


def violations(page, *, rules_off: tuple[str, ...] = ()) -> list[dict]:
    """axe's violations on the page as it is now. A page with a CSP that forbids scripts needs a
    context made with `bypass_csp=True` (the injected script is the test's, not the page's)."""
    page.add_script_tag(path=str(axe_script()))
    return page.evaluate(_RUN, list(rules_off))["violations"]


def describe(found: list[dict]) -> str:
    """One line per failing element, for an assertion message a person can act on."""
    lines = []
    for violation in found:
        for node in violation["nodes"]:
            summary = " ".join(node["summary"].split())
            lines.append(f"{violation['id']} ({violation['impact']}) at {node['target']}: {summary}")
    return "\n".join(lines)
