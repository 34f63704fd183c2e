"""Whether a secret key is strong enough to sign reader links in production.

A production key should come from a random generator (`secrets.token_urlsafe(48)`, `token_hex(16)`
and up); what this refuses is a key a person made up. Two estimates, both in bits, both needed:

* the *alphabet* estimate, length times log2 of the alphabet the key draws from (hex: 16; otherwise
  26 per letter case, 10 for digits, 33 for punctuation): what a random key of this shape carries at
  most. It must reach MIN_BITS (128): `token_hex(16)` is exactly that;
* the *pattern* estimate: zxcvbn (Dropbox's estimator, pure Python), which finds dictionary words,
  common passwords, keyboard walks, sequences, repeats and dates and prices each, with the rest
  priced at the key's own alphabet (zxcvbn's default of 10 per character would make every random
  key look weak: `token_hex(16)` scored 106 bits). It must reach MIN_PATTERN_BITS and keep
  MIN_PATTERN_SHARE of the alphabet estimate: a random key loses a little to chance matches (a
  "date" in random hex; the worst of 6,000 keys from `token_hex(16)`, `token_hex(32)` and
  `token_urlsafe(32 and 48)` kept 0.76, about 97 bits for token_hex(16)), a made-up one a lot (the
  weak keys in tests/test_config.py keep 0.5 or less).

On top, rules that zxcvbn misses or words better, each one a random key trips only by a chance far below
one in a million: a short unit repeated, fewer than eight different characters, only digits, runs of
neighbouring characters (abcd, 1234), interleaved sequences (a1b2c3, aAbBcC), and a key mostly made of
dictionary words of four letters or more (a passphrase is for a person to remember; a signing key is for
a machine). The reason given never quotes the key.
"""

from __future__ import annotations

import math
from itertools import pairwise

MIN_LENGTH = 32
MIN_BITS = 128
MIN_PATTERN_BITS = 80
MIN_PATTERN_SHARE = 0.6
MAX_WORD_SHARE = 0.5  # of the key's characters in dictionary words of 4+ letters (random keys: < 0.3)
# Fewer different characters than this: a pattern, not a key. Chance alone gives token_hex(16) seven
# or fewer about once in 27 million draws (16 choose 7 x (7/16)^32 = 3.7e-8).
MIN_DISTINCT = 8
ESTIMATED_CHARS = 128  # zxcvbn takes time quadratic in the length: the first 128 characters decide
HEX = frozenset("0123456789abcdef")


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


def alphabet_size(key: str) -> int:
    """The alphabet a random key of this shape is drawn from."""
    if set(key) <= HEX or set(key) <= set("0123456789ABCDEF"):
        return 16
    size = 0
    size += 26 if any(c.islower() for c in key) else 0
    size += 26 if any(c.isupper() for c in key) else 0
    size += 10 if any(c.isdigit() for c in key) else 0
    size += 33 if any(not c.isalnum() for c in key) else 0
    return size or 1


def alphabet_bits(key: str) -> float:
    return len(key) * math.log2(alphabet_size(key))


def _patterned(text: str) -> bool:
    """A run: most neighbours one apart or the same (9 to 0 and z to a count as one apart)."""
    if len(text) < 4:
        return False
    near = sum(
        abs(ord(a) - ord(b)) <= 1 or {a, b} in ({"9", "0"}, {"z", "a"}, {"Z", "A"}) for a, b in pairwise(text)
    )
    return near >= 0.75 * (len(text) - 1)


def interleaved(key: str) -> bool:
    """Two to four runs woven together: a1b2c3..., aAbBcC..., 1a2b3c..."""
    return any(all(_patterned(key[start::stride]) for start in range(stride)) for stride in (2, 3, 4))


def pattern_estimate(key: str) -> tuple[float, float]:
    """(bits by zxcvbn with the rest priced at the key's alphabet, share of the key in dictionary
    words of four letters or more)."""
    from zxcvbn import scoring, zxcvbn  # its word lists load in ~0.1 s: only when a key is judged

    default = scoring.BRUTEFORCE_CARDINALITY
    scoring.BRUTEFORCE_CARDINALITY = alphabet_size(key)
    try:
        result = zxcvbn(key)
    finally:
        scoring.BRUTEFORCE_CARDINALITY = default
    words = sum(
        len(match["token"])
        for match in result["sequence"]
        if match["pattern"] == "dictionary" and len(match["token"]) >= 4
    )
    return math.log2(max(float(result["guesses"]), 1.0)), words / len(key)


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
    if key.isdigit():  # a number, a date, a phone number run together; no generator makes one
        return "it is a number (only digits)"
    steps = sum(abs(ord(a) - ord(b)) <= 1 for a, b in pairwise(key))
    if steps * 2 > length - 1:
        return "it is mostly runs of neighbouring characters (like abcd or 1234)"
    sample = key[:ESTIMATED_CHARS]
    if interleaved(sample):
        return "it is runs of characters woven together (like a1b2c3 or aAbBcC)"
    most = alphabet_bits(sample)
    if most < MIN_BITS:
        return (
            f"its {length} characters from an alphabet of {alphabet_size(sample)} carry at most "
            f"{most:.0f} bits, {MIN_BITS} are needed"
        )
    bits, words = pattern_estimate(sample)
    if words >= MAX_WORD_SHARE:
        return "it is mostly dictionary words (a passphrase, not a random key)"
    if bits < MIN_PATTERN_BITS or bits < MIN_PATTERN_SHARE * most:
        return (
            f"it follows guessable patterns (words, keyboard walks, sequences, dates): about {bits:.0f} "
            f"bits by a pattern-aware estimate, where a random key of its shape has {most:.0f}"
        )
    return None
