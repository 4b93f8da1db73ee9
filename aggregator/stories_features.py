"""Text features for story linking: weighted terms and named-entity-like tokens.

    title / excerpt / text → tokens → stopwords dropped, light stemming
                           → entity-like tokens (capitalised runs, numbers with units) boosted
                           → {term: weighted count}

Weights are raw counts here; `TermStats` turns them into TF-IDF with document frequencies
estimated online from the items currently in the index (see `aggregator.stories_index`).
Pure functions, no I/O, no downloads.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from aggregator.prefilter import EDGE_PUNCTUATION

TITLE_WEIGHT = 3.0
EXCERPT_WEIGHT = 2.0
TEXT_WEIGHT = 1.0
ENTITY_BOOST = 1.5
TEXT_CHARS = 2000
MAX_TERMS = 120

# A compact English stopword list, plus words every news article uses.
STOPWORDS = frozenset(
    """a about above after again against all almost also although always am among an and
    another any are around as at be because been before being below between both but by can
    cannot could did do does doing done down during each either else even ever every few for
    from further get gets got had has have having he her here hers herself him himself his how
    however i if in into is it its itself just least less like made make many may me might
    more most much must my myself never no nor not now of off often on once one only or other
    others our ours ourselves out over own per quite rather same she should since so some
    still such than that the their theirs them themselves then there these they this those
    though through thus to too under until up upon us very was we were what when where whether
    which while who whom whose why will with within without would yet you your yours yourself
    yourselves said says say saying told tell according told year years new day days time
    week weeks month months today yesterday tomorrow monday tuesday wednesday thursday friday
    saturday sunday people percent mr mrs ms dr two three first last next well back way
    including including news report reported reports added via amp read more updated""".split()
)

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?:;\"“”])\s+|\n+")
_WORD = re.compile(
    r"[£$€¥]?\d+(?:[.,]\d+)*(?:%|[a-zA-Z]{1,3}\b)?|[^\W\d_]+(?:[’'][^\W\d_]+)*(?:-[^\W\d_]+)*"
)
_NUMBER = re.compile(r"[£$€¥]?\d")
_SENTENCE_ENDS = frozenset('.!?:;"“”')  # the look-behind class of `_SENTENCE_SPLIT`
TokenKind = tuple[str | None, bool, bool, bool]


def _stem(word: str) -> str:
    """Light, deterministic suffix stripping: possessives and regular plurals."""
    for suffix in ("'s", "’s"):
        if word.endswith(suffix):
            word = word[: -len(suffix)]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _is_title_case(kinds: list[TokenKind]) -> bool:
    """True when most words are capitalised (headline style): capitals carry no signal."""
    longer = [capitalised for _, _, capitalised, long_word in kinds if long_word]
    return bool(longer) and longer.count(True) > 0.6 * len(longer)


@functools.lru_cache(maxsize=1 << 16)
def _normalise(token: str) -> str | None:
    """The term for a token, or None for stopwords and noise."""
    low = token.lower().replace("’", "'")
    if _NUMBER.match(low):
        return low if len(low) >= 2 else None
    term = _stem(low)
    if len(term) < 2 or term in STOPWORDS or low in STOPWORDS:
        return None
    return term


@functools.lru_cache(maxsize=1 << 16)
def _token_kind(token: str) -> TokenKind:
    """(term, is a number, is capitalised, is a word longer than three characters) of one
    token."""
    number = bool(_NUMBER.match(token))
    return (
        _normalise(token),
        number,
        token[:1].isupper() and not number,
        len(token) > 3 and not number,
    )


def field_terms(text: str, weight: float, out: dict[str, float]) -> None:
    """Add the weighted terms of one field of text into `out`.

    Each sentence's tokens give their terms, entity-like ones (numbers, and capitalised
    words after the first unless the sentence is in headline case) boosted, plus each run
    of two or more capitalised terms joined ("north_korea"), as an entity.
    """
    plain, boosted = weight, weight * ENTITY_BOOST
    get = out.get
    for tokens in sentence_tokens(text):
        kinds = list(map(_token_kind, tokens))
        detect = not _is_title_case(kinds)
        run: list[str] = []
        for index, (term, number, capitalised, _) in enumerate(kinds):
            capital = detect and capitalised
            if capital and term is not None:
                run.append(term)
            else:
                if len(run) >= 2:
                    joined = "_".join(run[:4])
                    out[joined] = get(joined, 0.0) + boosted
                run = []
            if term is not None:
                entity = number or (capital and index > 0)
                out[term] = get(term, 0.0) + (boosted if entity else plain)
        if len(run) >= 2:
            joined = "_".join(run[:4])
            out[joined] = get(joined, 0.0) + boosted


def sentence_tokens(text: str) -> list[list[str]]:
    """The `_WORD` tokens of each sentence of `text` that `_SENTENCE_SPLIT` separates (plus
    some empty sentences), read without running either pattern over most of the text.

    No token holds whitespace, so a sentence ends exactly at a newline or after a
    whitespace-delimited chunk ending in `_SENTENCE_ENDS`; a chunk of letters only is one
    token whole (`[^\\W\\d_]` is every letter), and so are the letters of a chunk that has
    `EDGE_PUNCTUATION` around them only; `_WORD` reads the other chunks, at half the cost
    of running it over whole sentences.
    """
    sentences: list[list[str]] = []
    findall = _WORD.findall
    ends = _SENTENCE_ENDS
    for line in text.split("\n"):
        tokens: list[str] = []
        for chunk in line.split():
            if chunk.isalpha():
                tokens.append(chunk)
            elif (inner := chunk.strip(EDGE_PUNCTUATION)).isalpha():
                tokens.append(inner)  # "word," or "(word)": letters between marks
            else:
                tokens += findall(chunk)
            if chunk[-1] in ends:
                sentences.append(tokens)
                tokens = []
        sentences.append(tokens)
    return sentences


def extract_terms(title: str, excerpt: str, text: str) -> dict[str, float]:
    """Weighted term counts of an item: title counts most, then excerpt, then body start.

    Only the `MAX_TERMS` heaviest terms are kept (ties broken by the term) so that the
    cost of linking one item is bounded whatever its length.
    """
    counts: dict[str, float] = {}
    field_terms(title, TITLE_WEIGHT, counts)
    field_terms(excerpt, EXCERPT_WEIGHT, counts)
    body = text[:TEXT_CHARS]
    if excerpt and body.startswith(excerpt[:80]):
        body = body[len(excerpt) :]
    field_terms(body, TEXT_WEIGHT, counts)
    if len(counts) > MAX_TERMS:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TERMS]
        counts = dict(ranked)
    return counts


_SLUG_SPLIT = re.compile(r"[-_+.]+")


def slug_title(web_url: str) -> str:
    """Words of the URL's most descriptive path segment ("" when it has none).

    Stands in for the title of an item that has no text at all: news URLs usually carry
    their headline as a slug (``/rihanna-cousin-shot-dead/``).
    """
    try:
        path = urlsplit(web_url).path
    except ValueError:  # not a URL ("http://["): no slug
        return ""
    segments = [seg for seg in path.split("/") if seg.count("-") >= 2]
    if not segments:
        return ""
    words = _SLUG_SPLIT.split(max(segments, key=len).rsplit(".", 1)[0])
    return " ".join(word for word in words if word and not word.isdigit())


def tf_weight(count: float) -> float:
    """Sublinear term frequency: 1 + log(count) for counts above one."""
    return 1.0 + math.log(count) if count > 1.0 else count


def cosine(a: Mapping[str, float], b: Mapping[str, float], norm_a: float, norm_b: float) -> float:
    """Cosine similarity of two sparse vectors with known norms (0.0 when either is empty)."""
    if norm_a <= 0.0 or norm_b <= 0.0:
        return 0.0
    common = a.keys() & b.keys()
    dot = sum(map(operator.mul, map(a.__getitem__, common), map(b.__getitem__, common)))
    return float(dot) / (norm_a * norm_b)
