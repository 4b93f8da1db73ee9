"""Entity-like tokens for story linking: what identifies an event is its rare specifics.

    title / excerpt / first paragraphs
      → sentences → word and number tokens
      → proper nouns: capitalised words not at a sentence start, or confirmed as proper
        elsewhere in the same item (headline case and sentence starts carry no signal alone)
      → runs of proper nouns also joined ("north_korea"), numbers with units or currency
        normalised ("480mw", "£52m", "$6000", "$1.2bn")
      → {entity: field weight}

Weights say where the entity was seen (title > excerpt > body); rarity is applied later with
document frequencies from the window (`aggregator.stories_index.TermIndex`). Pure functions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from aggregator.prefilter import EDGE_PUNCTUATION
from aggregator.stories_features import STOPWORDS

TITLE_WEIGHT = 1.5
EXCERPT_WEIGHT = 1.2
BODY_WEIGHT = 1.0
BODY_CHARS = 1500
MAX_ENTITIES = 60
MAX_RUN = 3

MONTHS = frozenset(
    """january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)
_NOT_ENTITIES = STOPWORDS | MONTHS | frozenset("file photo video watch live update".split())

# Sentence breaks: after [.!?], closing quotes or brackets and whitespace before what may
# open a sentence; a run of newlines; a spaced dash or bar. Every break starts with
# whitespace or a closing mark, so the pattern consumes that character first and then
# checks which break it opens: a leading character class lets the regex engine skip
# the rest of the text without trying each alternative at every position (2x faster
# than the plain form, `(?<=[.!?])["'”’)]*\s+(?=…)|\n+|\s[—–|]\s`, with the same splits;
# tests/test_link_features_reference.py holds it as the oracle).
_OPENS = r"(?=[\"'“‘(]?[A-Z0-9£$€])"
_SENTENCES = re.compile(
    r"[\s\"'”’)](?:"
    + rf"(?<=[.!?][\"'”’)])[\"'”’)]*\s+{_OPENS}"  # a closing mark after the stop
    + rf"|(?<=[.!?]\s)\s*{_OPENS}"  # whitespace right after the stop
    + r"|(?<=\n)\n*"  # newlines
    + r"|(?<=\s)[—–|]\s)"  # a spaced dash or bar
)
# A token is a number (with its unit or currency) or a word; splitting on the one group
# leaves what lies between tokens at even positions. A number starts with a currency sign or
# a decimal digit (\d, category Nd), a word never does: the two alternatives never compete.
_TOKEN_SPLIT = re.compile(
    r"([£$€¥]?\d+(?:[.,]\d+)*(?:\s?(?:%|million|billion|bn|m|km|kg|mw|gw|k)\b"
    r"|[a-zA-Z]{1,2}\b)?"
    r"|[^\W\d_]+(?:['’][^\W\d_]+)*(?:-[^\W\d_]+)*)"
)
_DIGIT = re.compile(r"\d")  # what a number token starts with, after its currency sign
_CURRENCIES = frozenset("£$€¥")
_SCALE = {"million": "m", "billion": "bn", " ": ""}
Tokens = list[tuple[str, bool, bool]]  # (text, is a number, follows punctuation)


@dataclass(frozen=True, slots=True)
class _Sentence:
    """A sentence's tokens, its words (the tokens that are not numbers), and whether it is
    written in headline case: each computed once, for the lexicon and for the entities."""

    tokens: Tokens
    words: list[str]
    headline: bool


@functools.lru_cache(maxsize=1 << 16)
def _normalise_number(raw: str) -> str | None:
    """'$6,000' → '$6000', '52 million' → '52m'; None for lone digits and plain years."""
    low = raw.lower().replace(",", "")
    for long, short in _SCALE.items():
        low = low.replace(long, short)
    digits = sum(ch.isdigit() for ch in low)
    if digits == len(low) and (digits < 2 or (digits == 4 and low[:2] in ("19", "20"))):
        return None
    return low


@functools.lru_cache(maxsize=1 << 16)
def _word_key(word: str) -> str:
    low = word.lower().replace("’", "'")
    return low[:-2] if low.endswith("'s") else low


def _is_headline_case(words: list[str]) -> bool:
    """Most longer words capitalised (or all upper case): capitals carry no signal."""
    longer = [w for w in words if len(w) > 3]
    caps = len([w for w in longer if w[0].isupper()])
    return bool(longer) and caps > 0.6 * len(longer)


def _tokens(sentence: str) -> Tokens:
    """(text, is_number, follows punctuation) tokens of one sentence.

    Most sentences hold no digit, hence no number, whose token may span a space ("52
    million"); their word tokens never hold whitespace, so they are read chunk by chunk:
    a chunk of letters only is one token whole (`[^\\W\\d_]` is every letter), and so
    are the letters of a chunk with `EDGE_PUNCTUATION` around them only;
    `_TOKEN_SPLIT` reads the other chunks. Punctuation before a token is what is left of
    the chunks since the previous one.
    """
    if _DIGIT.search(sentence) is not None:
        return _split_tokens(sentence)
    tokens: Tokens = []
    follows = False  # text other than whitespace since the last token
    split = _TOKEN_SPLIT.split
    for chunk in sentence.split():
        if chunk.isalpha():
            tokens.append((chunk, False, follows))
            follows = False
            continue
        word = chunk.strip(EDGE_PUNCTUATION)
        if word.isalpha():  # "word," or "(word)": the letters between marks are the token
            tokens.append((word, False, follows or not chunk.startswith(word)))
            follows = not chunk.endswith(word)
            continue
        parts = split(chunk)
        for index in range(1, len(parts), 2):
            tokens.append((parts[index], False, follows or bool(parts[index - 1])))
            follows = False
        follows = follows or bool(parts[-1])
    return tokens


def _split_tokens(sentence: str) -> Tokens:
    """`_tokens` read with `_TOKEN_SPLIT` over the whole sentence."""
    parts = _TOKEN_SPLIT.split(sentence)
    return [
        (token, token[0].isdecimal() or token[0] in _CURRENCIES, bool(gap) and not gap.isspace())
        for gap, token in zip(parts[0::2], parts[1::2], strict=False)
    ]


def _sentence(text: str) -> _Sentence:
    tokens = _tokens(text)
    words = [token for token, number, _ in tokens if not number]
    return _Sentence(tokens, words, _is_headline_case(words))


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCES.split(text) if s and s.strip()]


def proper_lexicon(sentences: list[str]) -> set[str]:
    """Lower-cased words written capitalised inside running (not headline-case) sentences."""
    return _lexicon([_sentence(sentence) for sentence in sentences])


def _lexicon(sentences: list[_Sentence]) -> set[str]:
    found: set[str] = set()
    for sentence in sentences:
        if sentence.headline:
            continue
        for word in sentence.words[1:]:
            if word[0].isupper():
                key = _word_key(word)
                if key not in _NOT_ENTITIES:
                    found.add(key)
    return found


def _sentence_entities(sentence: _Sentence, lexicon: set[str]) -> list[str]:
    """Entities of one sentence's tokens, in order: numbers, proper nouns and their joined
    runs."""
    tokens, headline = sentence.tokens, sentence.headline
    found: list[str] = []
    run: list[str] = []
    for index, (text, number, gap) in enumerate(tokens):
        if gap and run:
            _close_run(run, found)
            run = []
        if number:
            value = _normalise_number(text)
            if value is not None:
                found.append(value)
        elif text[:1].isupper():
            key = _word_key(text)
            if (
                key not in _NOT_ENTITIES
                and len(key) > 1
                and (
                    (not headline and (index > 0 or _leads_name(tokens)))
                    or key in lexicon
                    or (text.isupper() and len(text) <= 5)
                )
            ):
                run.append(key)
                found.append(key)
                continue
        if run:
            _close_run(run, found)
            run = []
    _close_run(run, found)
    return found


def _close_run(run: list[str], found: list[str]) -> None:
    """A run of two or more proper nouns is also an entity, joined (at most `MAX_RUN`)."""
    if len(run) >= 2:
        found.append("_".join(run[:MAX_RUN]))


def _leads_name(tokens: Tokens) -> bool:
    """A sentence opening with two capitalised words ("North Korea said") opens with a name."""
    if len(tokens) < 2 or tokens[1][1] or tokens[1][2]:
        return False
    second = tokens[1][0]
    return second[:1].isupper() and _word_key(second) not in _NOT_ENTITIES


def extract_entities(title: str, excerpt: str, text: str) -> dict[str, float]:
    """Entity-like tokens of an item, each with the weight of the best field it is in.

    Only the first `BODY_CHARS` of the text are read (the lead carries the specifics), and
    at most `MAX_ENTITIES` entities are kept (title first), so the cost per item is bounded.
    """
    body = text[:BODY_CHARS]
    if excerpt and body.startswith(excerpt[:80]):
        body = body[len(excerpt) :]
    fields = [(title, TITLE_WEIGHT), (excerpt, EXCERPT_WEIGHT), (body, BODY_WEIGHT)]
    split = [([_sentence(s) for s in _sentences(field)], weight) for field, weight in fields]
    lexicon = _lexicon([sentence for sentences, _ in split[1:] for sentence in sentences])
    out: dict[str, float] = {}
    seen = out.get
    for sentences, weight in split:
        for sentence in sentences:
            for entity in _sentence_entities(sentence, lexicon):
                best = seen(entity)
                if best is None:
                    if len(out) < MAX_ENTITIES:
                        out[entity] = weight
                elif weight > best:
                    out[entity] = weight
    return out
