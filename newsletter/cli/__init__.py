"""The `newsletter` command line: a thin shell over the services, with clear errors and exit codes.

Exit codes: 0 done (or nothing to do), 1 refused (bad input, wrong state; the message says why),
2 usage error (Typer's own), 130 interrupted (Ctrl-C). A refusal is one line naming the input; any
exception nobody foresaw still becomes one line (`main`), never a traceback, never a secret.

One module per group of commands. Each imports what its commands need when they run, not at start-up:
`newsletter --help` loads no database driver, web stack, scheduler or renderer.
"""

from __future__ import annotations

import os

from newsletter.cli import (  # noqa: F401  (registers)
    content,
    demo,
    issues,
    readers,
    reports,
    services,
    store,
    webhooks,
)
from newsletter.cli.apps import app
from newsletter.cli.common import DEBUG_VARIABLE, errors, loaded_settings

__all__ = ["app", "main"]


def main(args: list[str] | None = None) -> None:
    """The `newsletter` command (`args` instead of the command line: `scheduler.py`). The commands
    refuse bad input with their own one-line messages; this is the backstop for the rest: an
    unexpected exception becomes one masked line and exit 1 (with NEWSLETTER_DEBUG=1, the
    traceback), Ctrl-C exits 130 without a word."""
    try:
        app(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:
        if _debug_requested():
            raise
        errors.print(unexpected_line(exc), markup=False, soft_wrap=True)
        errors.print(f"Rerun with {DEBUG_VARIABLE}=1 to see the traceback.", markup=False, soft_wrap=True)
        raise SystemExit(1) from None


def unexpected_line(exc: BaseException) -> str:
    """`error: unexpected <Type>: <first line of its message>`, cut short, every known secret masked."""
    from newsletter.config import secrets_in_environment
    from newsletter.redaction import redact

    text = str(exc).strip()
    first = text.splitlines()[0] if text else "(no message)"
    secrets = secrets_in_environment()
    for settings in loaded_settings:
        secrets |= settings.secret_values()
    message = redact(first, secrets)
    if len(message) > 300:
        message = message[:300] + "..."
    return f"error: unexpected {type(exc).__name__}: {message}"


def _debug_requested() -> bool:
    if loaded_settings:
        return loaded_settings[-1].debug
    return os.environ.get(DEBUG_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}
