"""Masking credentials in messages: the last line of defence, for errors nobody foresaw.

The specific messages never quote a secret in the first place; this is for the one-line report of an
unexpected exception, whose text may hold anything (a URL with its password, a token in a header).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote

MASK = "***"
MIN_MASKED = 3  # shorter values would mask ordinary words; a URL's password is masked by form anyway
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@]+@")


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret and every password written into a URL replaced by ***."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= MIN_MASKED:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda match: f"{match['head']}{MASK}@", text)


def url_secrets(url: str | None) -> set[str]:
    """The password in a URL as written and percent-decoded (either may turn up in a message)."""
    if not url or "@" not in url:
        return set()
    credentials = url.partition("://")[2].rpartition("@")[0]
    password = credentials.partition(":")[2]
    return {password, unquote(password)} - {""}


def environment_secrets(
    secret_variables: Iterable[str], url_variables: Iterable[str], env_file: Path | None = Path(".env")
) -> set[str]:
    """The credentials the environment (and `.env`) holds under these variables, read without
    validating anything: for when the settings could not be read, or were not read yet. Names are
    matched regardless of case, as pydantic-settings reads them."""
    wanted = {name.lower() for name in secret_variables}
    urls = {name.lower() for name in url_variables}
    sources = [dict(os.environ)]
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
            sources.append({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    found: set[str] = set()
    for source in sources:
        for key, value in source.items():
            if key.lower() in wanted and value:
                found.add(value)
            elif key.lower() in urls:
                found |= url_secrets(value)
    return found
