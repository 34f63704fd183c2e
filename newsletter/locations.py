"""Whether the product may create a file or directory at a configured path, without creating it.

One rule for every path the product writes on its own (the SQLite store, the generated secret file,
the outbox): it creates the file or directory the setting names, never a missing directory above it,
which is usually a typo. Each function returns the problem in a few words, naming the path, or None.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def file_problem(path: Path) -> str | None:
    """Why a file cannot be kept (read, or created) at `path`."""
    if path.is_dir():
        return f"{path} is a directory, not a file"
    if path.exists():
        return None
    return parent_problem(path)


def directory_problem(path: Path) -> str | None:
    """Why files cannot be written into the directory `path` (made if missing, its parent not)."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is a file, not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"the directory {path} is not writable"
        return None
    return parent_problem(path)


def parent_problem(path: Path) -> str | None:
    """Why `path` cannot be created in its parent directory."""
    parent = path.parent
    if not parent.exists():
        return f"the directory {parent} (for {path}) does not exist; create it first"
    if not parent.is_dir():
        return f"{parent} is a file, not a directory (for {path})"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the directory {parent} is not writable (for {path})"
    return None


def input_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an input file: missing, a directory, not a regular file (a device
    or a pipe would be read without end), or not readable."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None
