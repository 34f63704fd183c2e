"""The web packages have no import circle: an app module imports its routers, and no router (nor
anything they import) imports an app module back. Shared state and helpers live in a module the
routers import (`newsletter.web.common`, `newsletter.console.state`)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "newsletter"
APP_MODULES = {"newsletter.web.app", "newsletter.console.app"}
PACKAGES = ("web", "console")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports by name, at any depth of its code (imports inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = "newsletter." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base])
            found.add(base.rstrip("."))
            found |= {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
    return found


def router_modules() -> list[Path]:
    return [
        path
        for name in PACKAGES
        if (PACKAGE / name).is_dir()
        for path in sorted((PACKAGE / name).glob("*.py"))
        if path.name not in ("app.py", "__init__.py")
    ]


@pytest.mark.parametrize("path", router_modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_router_or_helper_imports_an_app_module(path):
    back = imported_modules(path) & APP_MODULES
    assert not back, f"{path.relative_to(PACKAGE.parent)} imports {sorted(back)}: an import circle"


def test_each_router_imports_on_its_own_in_a_fresh_interpreter():
    modules = [
        "newsletter." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts) for path in router_modules()
    ]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for name in modules:  # one interpreter each: a circle shows only when its module is imported first
        done = subprocess.run([sys.executable, "-c", script, name], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr[-1500:]}"
