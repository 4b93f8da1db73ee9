"""Cheap checks that let a regex be skipped over text that usually cannot match it.

    holds_ignorecase_trap(text)            "İ", "ı" or "ſ" is in `text`
    may_hold_ignoring_case(text, words)    one of `words` is in `text` lower-cased, or a trap
    EDGE_PUNCTUATION                       marks a chunk of letters may have at its edges and
                                           still be one word or token

A pattern compiled with ``re.IGNORECASE`` matches an ASCII letter to three characters that
`str.lower` does not turn into it, so a substring search over lower-cased text can rule a
match out only when none of them is present (tests/test_quality.py finds exactly these
three over all of Unicode).
"""

from __future__ import annotations

from collections.abc import Iterable

IGNORECASE_TRAPS = ("\u0130", "\u0131", "\u017f")  # "İ", "ı", "ſ"

EDGE_PUNCTUATION = ".,;:!?\"'()[]“”‘’«»…-–—"
"""Marks that are neither letters, digits, underscores nor currency signs: stripping them
from a chunk's edges leaves the letters any word or token pattern of the package reads
there (the tests of `dedupe`, `stories_features` and `stories_entities` hold that)."""


def holds_ignorecase_trap(text: str) -> bool:
    """Whether `text` holds one of `IGNORECASE_TRAPS` (three substring searches: ~0.1 us
    for a 2,000-character text, where a character-class pattern takes ~7)."""
    dotted, dotless, long_s = IGNORECASE_TRAPS
    return dotted in text or dotless in text or long_s in text


def may_hold_ignoring_case(text: str, words: Iterable[str]) -> bool:
    """False when no IGNORECASE pattern that needs one of the lower-case `words` can match
    `text`: none of them is in `text` lower-cased, and it holds no trap character."""
    lowered = text.lower()
    return any(word in lowered for word in words) or holds_ignorecase_trap(text)
