"""Whether the product may create a file or directory at a configured path, without creating it.

One rule for every path the product writes on its own (the SQLite store, the generated secret file,
the outbox): it creates the file or directory the setting names, never a missing directory above it,
which is usually a typo. Each function returns the problem in a few words, naming the path, or None.
A path the system cannot even look at (a name over 255 bytes, a loop of links, a component that is not
a directory) is a problem too, in the system's words: never an exception.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

MAX_SHOWN_PATH = 120  # a path quoted in a message is cut to this many characters


class _Unusable(Exception):
    """The system refuses to look at the path; `reason` says why in its words."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"cannot use {shown_path(path)}: {reason}")
        self.reason = reason


def shown_path(path: Path | str) -> str:
    text = str(path)
    return text if len(text) <= MAX_SHOWN_PATH else text[: MAX_SHOWN_PATH - 3] + "..."


def _mode(path: Path, *, missing_above: bool = True) -> int | None:
    """The path's mode; None when nothing is there (or, with `missing_above`, when a component
    above is not a directory: the parent check names it); _Unusable when the system cannot tell."""
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        if missing_above:
            return None
        raise _Unusable(path, exc.strerror or str(exc)) from None
    except OSError as exc:
        raise _Unusable(path, os_error_reason(exc)) from None


def os_error_reason(exc: OSError) -> str:
    """The system's words for a failure on a path, with a hint where they are terse."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        reason += " (at most 255 bytes a name, 4096 a path)"
    return reason


def file_problem(path: Path, what: str = "file") -> str | None:
    """Why a file cannot be kept (read, or created) at `path`: it must be a regular file, or
    creatable in an existing directory. `what` names the file in the message."""
    try:
        mode = _mode(path)
        if mode is None:
            return parent_problem(path)
    except _Unusable as exc:
        return str(exc)
    if stat.S_ISDIR(mode):
        return f"{shown_path(path)} is a directory, not a {what}"
    if not stat.S_ISREG(mode):
        return f"{shown_path(path)} is not a regular file (a device, a pipe or a socket)"
    return None


def directory_problem(path: Path) -> str | None:
    """Why files cannot be written into the directory `path` (made if missing, its parent not)."""
    try:
        mode = _mode(path)
    except _Unusable as exc:
        return str(exc)
    if mode is None:
        return parent_problem(path)
    if not stat.S_ISDIR(mode):
        return f"{shown_path(path)} is a file, not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"the directory {shown_path(path)} is not writable"
    return None


def parent_problem(path: Path) -> str | None:
    """Why `path` cannot be created in its parent directory."""
    parent = path.parent
    if len(os.fsencode(path.name)) > 255:
        return f"cannot use {shown_path(path)}: File name too long (at most 255 bytes a name)"
    try:
        mode = _mode(parent)
    except _Unusable as exc:
        return str(exc)
    if mode is None:
        return f"the directory {shown_path(parent)} (for {shown_path(path)}) does not exist; create it first"
    if not stat.S_ISDIR(mode):
        return f"{shown_path(parent)} is a file, not a directory (for {shown_path(path)})"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the directory {shown_path(parent)} is not writable (for {shown_path(path)})"
    return None


def input_file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as an input file: missing, a directory, not a regular file (a device
    or a pipe would be read without end), or not readable."""
    try:
        mode = _mode(path, missing_above=False)
    except _Unusable as exc:
        return f"cannot read: {exc.reason}"
    if mode is None:
        return "no such file"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None
