"""Which tool (or reviewer) a name in an import file means: slugs, and when two names clash on one.

A tool's identity is its slug; so is a reviewer's.

* An explicit slug (`slug:` on a tool, `reviewer_slug:` on a review) is the editor saying which one
  this is: the same slug is the same tool, and its name may change (a rename).
* Without one, the slug is derived from the name, and it means only a tool of that same name
  ("the same" after Unicode normalisation, case folding and collapsing spaces). A derived slug
  that the store, or another mention in the same run, holds under a different name is a clash and
  the import is refused: two tools would silently share one row and one card. Re-importing the
  same name with a new tagline or description is an update.
* Within one run, every mention of a slug carries the same name, explicit or not.

Deriving: letters folded to ASCII where Unicode can (`Café` -> `cafe`); where folding loses letters,
digits or symbols (`قلم Pen`, `Straße`, an emoji), a short stable hash of the normalised name is
appended (`pen-8c1f2e7a`), so `قلم Pen` and `Pen` get slugs of their own. ASCII names keep the slugs
they always had (`Gemini 2.5 Flash Lite` -> `gemini-2-5-flash-lite`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

MAX_SLUG = 120
HASH_CHARS = 8


def name_key(name: str) -> str:
    """A name as identity compares it: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def slugify(text: str) -> str:
    """`Gemini 2.5 Flash Lite` -> `gemini-2-5-flash-lite`; `قلم Pen` -> `pen-<hash>`."""
    decomposed = unicodedata.normalize("NFKD", text)
    lost = any(not ch.isascii() and unicodedata.category(ch)[0] in "LNS" for ch in decomposed)
    ascii_text = decomposed.encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not lost and base:
        return base[:MAX_SLUG]
    digest = hashlib.sha256(name_key(text).encode()).hexdigest()[:HASH_CHARS]
    return f"{base[: MAX_SLUG - HASH_CHARS - 1].rstrip('-')}-{digest}".lstrip("-")


@dataclass(frozen=True)
class Mention:
    """One place a tool or reviewer is named in a run: its slug, whether the file gave it, the
    name, and where (for the message)."""

    slug: str
    explicit: bool
    name: str
    where: str


def clash_in_run(first: Mention, other: Mention) -> bool:
    """Two mentions of one slug in one run disagree on the name."""
    return first.slug == other.slug and name_key(first.name) != name_key(other.name)


def clash_with_store(mention: Mention, stored_name: str) -> bool:
    """A derived slug the store holds for a tool of another name (an explicit slug is a rename)."""
    return not mention.explicit and name_key(mention.name) != name_key(stored_name)


def run_clash_reason(kind: str, first: Mention, other: Mention, field: str) -> str:
    return (
        f"{kind} {other.name!r} has the slug {other.slug!r}, which {first.where} gives to {first.name!r}; "
        f"if they are one {kind}, write the name the same way in both; if not, give one of them its own "
        f"`{field}:`"
    )


def store_clash_reason(kind: str, mention: Mention, stored_name: str, field: str) -> str:
    return (
        f"{kind} {mention.name!r} would get the slug {mention.slug!r}, which the store already gives to "
        f"{stored_name!r}; if it is the same {kind} under a new name, write `{field}: {mention.slug}` to "
        f"rename it; if it is another {kind}, give it its own `{field}:`"
    )
