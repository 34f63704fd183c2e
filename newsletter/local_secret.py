"""The generated local secret key: read from its file, or made once and kept there (mode 0600).

Only for development: production takes its key from NEWSLETTER_SECRET_KEY.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MAX_KEY_FILE_CHARS = 4096  # a key file holds one line; more is some other file


def read_or_create(path: Path, min_length: int) -> str:
    """The key kept in `path`; a new one (0600, written atomically) if the file is missing or holds
    less than `min_length` characters. OSError when the file cannot be read or made (its directory is
    never created here), ValueError when it is not a key file."""
    try:
        existing = _read(path)
    except FileNotFoundError:
        existing = ""
    if len(existing) >= min_length:
        return existing
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race, or the file was empty: take what is there
        existing = _read(path)
        if len(existing) >= min_length:
            return existing
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def _read(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        text = handle.read(MAX_KEY_FILE_CHARS + 1)
    if len(text) > MAX_KEY_FILE_CHARS:
        raise ValueError(f"larger than {MAX_KEY_FILE_CHARS} characters")
    return text.strip()
