"""Files written at a path the operator names (`--out`): only ever a regular file, and whole or not
at all.

A file is written to a temporary beside it, flushed to the disk, then renamed over the target, so a
full disk or a crash leaves the old file (or none), never a half-written or empty one, and no
temporary behind. Renaming over a target replaces whatever the name held, so the target is checked
first: a device (`/dev/null`), a pipe, a socket or a directory is refused, naming the path; so is a
symbolic link, deliberately: renaming would replace the link itself rather than write to the file it
points to, and writing through it would put a file wherever the link leads. The refusal names the
link's target so the operator can give that path instead.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from newsletter.locations import os_error_reason, parent_problem, shown_path

T = TypeVar("T")


class OutputRefused(Exception):
    """The file cannot be written at this path; the message names it and says why."""


def output_file_problem(path: Path) -> str | None:
    """Why a file cannot be written (created or replaced) at `path`, or None."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return parent_problem(path)
    except OSError as exc:
        return f"cannot use {shown_path(path)}: {os_error_reason(exc)}"
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"{shown_path(path)} is a symbolic link (to {shown_path(target)}); give the file's own path"
    if stat.S_ISDIR(mode):
        return f"{shown_path(path)} is a directory, not a file"
    if not stat.S_ISREG(mode):
        return f"{shown_path(path)} is not a regular file (a device, a pipe or a socket); nothing was written"
    return parent_problem(path)


def write_whole(path: Path, write: Callable[[IO[str]], T], *, encoding: str = "utf-8") -> T:
    """Write a text file through `write(handle)` (which may stream), whole or not at all; returns
    what `write` returns. Raises OutputRefused for a path that is not a place for a regular file,
    OSError (the temporary removed, the target untouched) when the disk refuses."""
    temporary = _temporary(path)
    try:
        with open(temporary, "w", encoding=encoding, newline="") as handle:
            result = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return result


def write_files(files: dict[Path, bytes]) -> None:
    """Write several files, each whole: every temporary first, then the renames, so a disk that
    fills up on the second leaves the first untouched too."""
    temporaries: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            temporaries[path] = temporary = _temporary(path)
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for path, temporary in temporaries.items():
            _replace(temporary, path)
    except BaseException:
        for temporary in temporaries.values():
            _remove(temporary)
        raise


def _temporary(path: Path) -> Path:
    if problem := output_file_problem(path):
        raise OutputRefused(problem)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:100]}.", suffix=".tmp")
    os.close(fd)
    os.chmod(name, _mode_for(path))
    return Path(name)


def _mode_for(path: Path) -> int:
    """An existing file keeps its mode; a new one gets the usual 0666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _replace(temporary: Path, path: Path) -> None:
    if problem := output_file_problem(path):  # something took its place while we wrote
        raise OutputRefused(problem)
    os.replace(temporary, path)


def _remove(temporary: Path) -> None:
    with contextlib.suppress(OSError):
        temporary.unlink(missing_ok=True)
