"""The fast `like` matcher agrees with the server's regex semantics on every string."""

from __future__ import annotations

import random

import pytest

from triplit_sync.query._semantics import like_matcher, like_regex

PATTERNS = ["%7%", "%ab%", "ab%", "%ab", "ab", "AB", "%a_b%", "a%b", "%", "%%", "", "%\u00e9%", "%k%", "%s%"]
ALPHABET = ["a", "b", "A", "B", "7", "k", "s", " ", "\n", "\r", "\u2028", "\u212a", "\u017f", "\u00e9", "%", "_"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_like_matcher_equals_regex(pattern: str) -> None:
    rng = random.Random(pattern)
    regex = like_regex(pattern).fullmatch
    fast = like_matcher(pattern)
    samples = ["", "ab", "xaby", "AB7", "a\nb", "\u212a", "ba"]
    samples += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    for text in samples:
        assert fast(text) == (regex(text) is not None), (pattern, text)
