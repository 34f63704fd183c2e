"""Whether a secret key is strong enough to sign reader links in production.

Length alone let `'a' * 32` and `'changeme' * 4` through. A key must also carry entropy: the Shannon
entropy of its characters times its length is at least MIN_BITS, it is not a short unit repeated, it is
not a run of neighbouring characters (abcd..., 1234...), and it is not drawn from a handful of symbols.
The README's `secrets.token_urlsafe(48)` (about 330 bits by this estimate) and `secrets.token_hex(32)`
(about 250) pass. The reason given never quotes the key.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

MIN_LENGTH = 32
MIN_BITS = 128
MIN_DISTINCT = 10  # fewer different characters than the ten digits: a pattern, not a key
MAX_DIGIT_SHARE = 0.9  # "mostly digits": a number, a date, a phone number run together


def shannon_bits(key: str) -> float:
    """Estimated entropy of `key` in bits: per-character Shannon entropy of its own symbol counts,
    times its length (an estimate that flatters long keys only if their symbols are spread out)."""
    if not key:
        return 0.0
    total = len(key)
    per_char = -sum(n / total * math.log2(n / total) for n in Counter(key).values())
    return per_char * total


def smallest_period(text: str) -> int:
    """The length of the shortest unit that `text` repeats (the last repetition may be cut short);
    len(text) when it repeats none. Knuth-Morris-Pratt failure function, linear in the length."""
    failure = [0] * len(text)
    matched = 0
    for index in range(1, len(text)):
        while matched and text[index] != text[matched]:
            matched = failure[matched - 1]
        if text[index] == text[matched]:
            matched += 1
        failure[index] = matched
    return len(text) - (failure[-1] if text else 0)


def weakness(key: str) -> str | None:
    """Why `key` is too weak to sign links, in a few words, or None when it is strong enough."""
    length = len(key)
    if length < MIN_LENGTH:
        return f"it is shorter than {MIN_LENGTH} characters"
    period = smallest_period(key)
    if period <= length // 2:
        return f"it is a {period}-character unit repeated"
    distinct = len(set(key))
    if distinct < MIN_DISTINCT:
        return f"it uses only {distinct} different characters"
    if sum(c.isdigit() for c in key) >= MAX_DIGIT_SHARE * length:
        return "it is almost all digits"
    steps = sum(abs(ord(a) - ord(b)) <= 1 for a, b in pairwise(key))
    if steps * 2 > length - 1:
        return "it is mostly runs of neighbouring characters (like abcd or 1234)"
    bits = shannon_bits(key)
    if bits < MIN_BITS:
        return f"it carries about {bits:.0f} bits of entropy, {MIN_BITS} are needed"
    return None
