"""The `newsletter` command as its own process, the way an operator runs it, for the tests that
drive the real command line; and a small tmpfs, a disk that fills up, for the tests of writes that
run out of room."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.databases import clean_env


def newsletter(
    directory: Path,
    env: dict[str, str],
    *args: str,
    stdout=subprocess.PIPE,
    timeout: float = 120,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`newsletter ARGS` in `directory` with exactly `env`, its output captured as text (standard
    output into `stdout` when given a file instead)."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=directory,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=check,
    )


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdout=subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    """`newsletter ARGS` in `cwd` on its own store, with no setting of the developer's, wide
    uncoloured output, and `env` on top."""
    clean = clean_env(cwd) | {"COLUMNS": "200", "NO_COLOR": "1"} | (env or {})
    return newsletter(cwd, clean, *args, stdout=stdout)


def mount_tmpfs(directory: Path, size: str) -> bool:
    """A tmpfs of `size` at `directory`; False where this process cannot mount one (not root)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True
    )
    return done.returncode == 0
