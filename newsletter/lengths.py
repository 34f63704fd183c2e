"""How long a subject and a preheader may be: the one place these rules live.

An editor's `issue edit`, the quality gate and anything else that judges these words asks here, so an
edit can never be accepted that the check then refuses (or the other way round). Lengths are counted
in characters of the stripped text, as an inbox shows them.
"""

from __future__ import annotations

SUBJECT_MIN_CHARS = 5
SUBJECT_MAX_CHARS = 150
SUBJECT_WARNING_CHARS = 78  # most inboxes cut a subject between 40 and 80 characters
PREHEADER_MIN_CHARS = 1
PREHEADER_MAX_CHARS = 250  # inboxes show 35 to 140; past this it is body text, not a preheader


def subject_problem(subject: str) -> str | None:
    """Why `subject` cannot be sent, or None when its length is within the rule."""
    return _problem("subject", subject, SUBJECT_MIN_CHARS, SUBJECT_MAX_CHARS)


def preheader_problem(preheader: str) -> str | None:
    """Why `preheader` cannot be sent, or None when its length is within the rule."""
    return _problem("preheader", preheader, PREHEADER_MIN_CHARS, PREHEADER_MAX_CHARS)


def subject_rule() -> str:
    return f"{SUBJECT_MIN_CHARS} to {SUBJECT_MAX_CHARS} characters"


def preheader_rule() -> str:
    return f"{PREHEADER_MIN_CHARS} to {PREHEADER_MAX_CHARS} characters"


def _problem(field: str, text: str, low: int, high: int) -> str | None:
    length = len(text.strip())
    if low <= length <= high:
        return None
    return f"the {field} has {length} characters; write {low} to {high}"
