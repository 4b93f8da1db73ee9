"""Topic rules (declarative, from config) → the topics a record belongs to, best first.

    TopicMatcher(settings.topics)           compile every rule once
      .match(title=, excerpt=, body=, …)    → [TopicMatch(topic, score, hits)], best first
    assign_topics(matcher, record)          → ("AI", "Computer Vision")

How a keyword or phrase matches (see ``docs/quality.md`` → Topics):

* On word boundaries, Unicode-aware: ``(?<!\\w)`` before and ``(?!\\w)`` after, so "ai" never
  matches inside "Shanghai" or "said".
* Case-insensitive, except short all-caps acronyms (2–5 characters, e.g. ``AI``, ``OCR``,
  ``LLM``, ``5G``), which match only in capitals: "AI" matches "AI" and "AI's" but not "Ai"
  ("Ai Weiwei" is not AI) nor "ai". Write a keyword in lower case to match it in any case.
* Words inside a phrase may be separated by spaces or hyphens ("self-driving" ≈ "self driving";
  a hyphen in the keyword also allows no separator: "e-mail" ≈ "email").
* Inflection on the last word, if it is written in lower case: plural -s/-es/-ies, possessive
  's; single words also take -ed/-ing ("election" → "elections", "vote" → "voting",
  "ban" → "banned"). Capitalised names and acronyms only take plural -s and possessive 's.

Score = Σ over fields (title, excerpt, body) of field weight × Σ over distinct keywords of
(1 + ½ + ¼ + … for each repeat, so at most 2 per keyword), plus the category weight once when a
feed category maps to the topic. Regex rules count like keywords. Any exclusion hit in any field
vetoes the topic; a non-empty ``sources`` list restricts the topic to those sources. A topic is
kept when it has at least one hit and its score reaches its threshold.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from aggregator.models import Record
from aggregator.prefilter import holds_ignorecase_trap
from aggregator.settings import TopicSettings

BODY_LIMIT = 5000
"""Only the first characters of the body are searched: cheap and enough for the lede."""

_FIELDS = ("title", "excerpt", "body")
_SEPARATOR = r"[\s\-\u2010\u2011\u2012\u2013]+"
_HYPHEN_SEPARATOR = r"[\s\-\u2010\u2011\u2012\u2013]?"
_POSSESSIVE = r"(?:['\u2019]s|s['\u2019])?"
_VOWELS = frozenset("aeiou")
_ACRONYM = re.compile(r"^[A-Z0-9&]{2,5}$")
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")
_PHRASE_PIECES = re.compile(r"(\s+|-)")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TopicMatch:
    """One topic a text matched: its score and the hits that made it (``title:lidar``)."""

    topic: str
    score: float
    hits: tuple[str, ...]


def is_acronym(word: str) -> bool:
    """True for short all-caps tokens that must match case-sensitively (AI, OCR, LLM, 5G)."""
    return bool(_ACRONYM.match(word)) and any(ch.isalpha() for ch in word)


def inflections(word: str, *, verbs: bool) -> list[str]:
    """The regular forms of a lower-case word: plural, and with `verbs` also -ed/-ing."""
    consonant_y = len(word) > 2 and word.endswith("y") and word[-2] not in _VOWELS
    forms = [word, word[:-1] + "ies" if consonant_y else word + "s"]
    if word.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.append(word + "es")
    if not verbs or len(word) < 3 or word.endswith(("ing", "ed")):
        return forms
    if consonant_y:
        forms += [word[:-1] + "ied", word + "ing"]
    elif word.endswith("e"):
        forms += [word + "d", word + "ing" if word.endswith("ee") else word[:-1] + "ing"]
    else:
        forms += [word + "ed", word + "ing"]
    if _doubles_final_consonant(word):
        forms += [word + word[-1] + "ed", word + word[-1] + "ing"]
    return forms


def _doubles_final_consonant(word: str) -> bool:
    """Short consonant-vowel-consonant words double before -ed/-ing (ban → banned)."""
    if not 3 <= len(word) <= 4 or not word.isalpha():
        return False
    a, b, c = word[-3], word[-2], word[-1]
    return a not in _VOWELS and b in _VOWELS and c not in _VOWELS and c not in "wxy"


def _word_pattern(word: str, *, last: bool, verbs: bool) -> str:
    if is_acronym(word):
        suffix = r"s?" + _POSSESSIVE if last else ""
        return f"(?-i:{re.escape(word)}){suffix}"
    if not last:
        return re.escape(word)
    if word.isalpha() and word == word.lower():
        forms = sorted(set(inflections(word, verbs=verbs)), key=len, reverse=True)
        return "(?:" + "|".join(map(re.escape, forms)) + ")" + _POSSESSIVE
    return re.escape(word) + r"s?" + _POSSESSIVE


def phrase_pattern(phrase: str) -> str:
    """The regex source (without boundaries) for one keyword or phrase."""
    phrase = unicodedata.normalize("NFC", " ".join(phrase.split()))
    pieces = _PHRASE_PIECES.split(phrase)
    words = [p for p in pieces[::2] if p]
    separators = pieces[1::2]
    out: list[str] = []
    for index, word in enumerate(words):
        if index:
            out.append(_HYPHEN_SEPARATOR if separators[index - 1] == "-" else _SEPARATOR)
        out.append(_word_pattern(word, last=index == len(words) - 1, verbs=len(words) == 1))
    return "".join(out)


def first_tokens(phrase: str) -> frozenset[str] | None:
    """Every lower-cased word token a match of `phrase` can begin with.

    A match starts on a word boundary, so the text's word token there is the phrase's first
    word, inflected as `_word_pattern` allows when it is also the last word, or, where a
    hyphen in the phrase may be left out ("e-mail" ≈ "email"), that word glued to what
    follows. None when the words concerned are not all ASCII word characters.
    """
    phrase = unicodedata.normalize("NFC", " ".join(phrase.split()))
    pieces = _PHRASE_PIECES.split(phrase)
    words = [p for p in pieces[::2] if p]
    if not words:
        return None
    return _tokens_from(words, pieces[1::2], 0)


def _tokens_from(words: list[str], separators: list[str], index: int) -> frozenset[str] | None:
    word = words[index]
    if not _ASCII_WORD.fullmatch(word):
        return None
    last = index == len(words) - 1
    if last:
        return frozenset(_last_word_tokens(word, verbs=len(words) == 1))
    if separators[index] != "-":
        return frozenset({word.lower()})
    glued = _tokens_from(words, separators, index + 1)
    if glued is None:
        return None
    return frozenset({word.lower(), *(word.lower() + rest for rest in glued)})


def _last_word_tokens(word: str, *, verbs: bool) -> set[str]:
    """The tokens `_word_pattern(word, last=True)` can match (its possessive "s'" included)."""
    if not is_acronym(word) and word.isalpha() and word == word.lower():
        forms = inflections(word, verbs=verbs)
        return {*forms, *(form + "s" for form in forms)}
    low = word.lower()
    return {low, low + "s", low + "ss"}


def phrase_anchors(phrases: Iterable[str]) -> frozenset[str] | None:
    """The union of `first_tokens` of `phrases` (None when any phrase has none)."""
    anchors: set[str] = set()
    for phrase in phrases:
        tokens = first_tokens(phrase)
        if tokens is None:
            return None
        anchors |= tokens
    return frozenset(anchors)


@dataclass(frozen=True, slots=True)
class ScannedText:
    """A text lower-cased once (same length, same positions) and its word tokens."""

    lowered: str
    tokens: frozenset[str]


def scan_text(text: str) -> ScannedText | None:
    """`text` lower-cased and split into word tokens, or None when its tokens cannot rule
    a keyword out.

    Lower-casing keeps every character's length and word-character class, and maps every
    character `re.IGNORECASE` matches to an ASCII letter or digit onto it, except three
    (checked over all of Unicode): "İ", "ı" and "ſ". A text holding one is searched for
    every keyword."""
    if holds_ignorecase_trap(text):
        return None
    lowered = text.lower()
    return ScannedText(lowered, frozenset(_WORD.findall(lowered)))


def is_word_char(ch: str) -> bool:
    """True for what ``\\w`` matches in a str pattern (letters, digits of any kind, "_")."""
    return ch.isalnum() or ch == "_"


def token_starts(scanned: ScannedText, tokens: Iterable[str]) -> list[int]:
    """Sorted positions where a whole word token of `scanned` is one of `tokens`."""
    text = scanned.lowered
    size = len(text)
    starts: list[int] = []
    for token in tokens:
        if len(token) == 1:  # a letter in most words: the regex engine skips them faster
            starts.extend(m.start() for m in _whole_word(token).finditer(text))
            continue
        at = text.find(token)
        while at >= 0:
            after = at + len(token)
            if (at == 0 or not is_word_char(text[at - 1])) and (
                after == size or not is_word_char(text[after])
            ):
                starts.append(at)
            at = text.find(token, at + 1)
    starts.sort()
    return starts


@functools.lru_cache(maxsize=64)
def _whole_word(token: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(token)}(?!\w)")


def anchored_matches(
    pattern: re.Pattern[str], text: str, scanned: ScannedText | None, anchors: frozenset[str] | None
) -> Iterator[re.Match[str]]:
    """The matches of ``pattern.finditer(text)``, trying only where one can start.

    A keyword match starts on a word token that is one of `anchors` (`phrase_anchors`), so
    those tokens' positions, in order, are the only places the pattern is tried; a match
    overlapping an earlier one is skipped as `finditer` skips it. Without anchors or a
    scanned text, the whole text is searched."""
    if scanned is None or anchors is None:
        yield from pattern.finditer(text)
        return
    end = 0
    for start in token_starts(scanned, anchors & scanned.tokens):
        if start < end:
            continue
        match = pattern.match(text, start)
        if match is not None:
            end = match.end()
            yield match


def _longest_first(phrase: str) -> tuple[int, str]:
    return (-len(phrase), phrase)


def ordered_phrases(phrases: Iterable[str]) -> list[str]:
    """Distinct, trimmed phrases, longest first, so a phrase wins over a word inside it."""
    return sorted({" ".join(p.split()) for p in phrases if p.strip()}, key=_longest_first)


def compile_phrases(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation, group ``k<i>`` for the i-th of `ordered_phrases`."""
    unique = ordered_phrases(phrases)
    if not unique:
        return None
    groups = [f"(?P<k{i}>{phrase_pattern(p)})" for i, p in enumerate(unique)]
    # A leading class of possible first characters lets the engine skip most positions fast.
    first = "".join(sorted({ch for p in unique for ch in (p[0].lower(), p[0].upper())}))
    return re.compile(
        f"(?=[{re.escape(first)}])" + r"(?<!\w)(?:" + "|".join(groups) + r")(?!\w)",
        re.IGNORECASE,
    )


def _repeat_value(count: int) -> float:
    """1 for the first occurrence, then ½, ¼, … for repeats (at most 2 in all)."""
    return 2.0 - 2.0 ** (1 - count)


class _CompiledTopic:
    """One topic's rules, compiled once."""

    def __init__(self, settings: TopicSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self.labels = ordered_phrases(settings.keywords)
        self.keywords = compile_phrases(self.labels)
        self.anchors = phrase_anchors(self.labels)
        self.regexes = tuple((r, re.compile(r, re.IGNORECASE)) for r in settings.regex)
        self.exclude = compile_phrases(settings.exclude)
        self.exclude_anchors = phrase_anchors(settings.exclude)
        self.sources = frozenset(s.casefold() for s in settings.sources)
        self.categories = frozenset(c.strip().casefold() for c in settings.categories)
        self.field_weights = {
            "title": settings.weights.title,
            "excerpt": settings.weights.excerpt,
            "body": settings.weights.body,
        }

    def counts(self, text: str, scanned: ScannedText | None = None) -> Counter[str]:
        """How often each keyword (by its configured spelling) and regex occurs in `text`.

        `scanned`, when given, is `scan_text(text)`: keywords are then tried only where
        one of their first tokens stands (`anchored_matches`)."""
        found: Counter[str] = Counter()
        if not text:
            return found
        if self.keywords is not None:
            for m in anchored_matches(self.keywords, text, scanned, self.anchors):
                if m.lastgroup:
                    found[self.labels[int(m.lastgroup[1:])]] += 1
        for source, pattern in self.regexes:
            hits = sum(1 for _ in pattern.finditer(text))
            if hits:
                found[f"/{source}/"] += hits
        return found

    def excluded(self, texts: Iterable[tuple[str, ScannedText | None]]) -> bool:
        """True when any exclusion phrase occurs in any of `texts` ((text, scan) pairs)."""
        if self.exclude is None:
            return False
        return any(
            next(anchored_matches(self.exclude, text, scanned, self.exclude_anchors), None)
            for text, scanned in texts
            if text
        )


class _AnchorIndex:
    """Which topics' keywords can start on which word token, so that a text is searched
    only for the topics one of whose first words it holds (a topic is bit i of a mask)."""

    def __init__(self, topics: Sequence[_CompiledTopic]) -> None:
        self._always = 0  # regex rules, and keywords without anchors: always searched
        self._by_token: dict[str, int] = {}
        for index, topic in enumerate(topics):
            bit = 1 << index
            if topic.regexes or (topic.keywords is not None and topic.anchors is None):
                self._always |= bit
            elif topic.anchors is not None:
                for token in topic.anchors:
                    self._by_token[token] = self._by_token.get(token, 0) | bit

    def topics_in(self, scanned: ScannedText | None) -> int:
        """The mask of topics that may have a hit in the scanned text (all without one)."""
        if scanned is None:
            return -1
        mask = self._always
        for token in self._by_token.keys() & scanned.tokens:
            mask |= self._by_token[token]
        return mask


class TopicMatcher:
    """Topic rules compiled once from settings; cheap to apply to each record."""

    def __init__(self, topics: Sequence[TopicSettings]) -> None:
        self._topics = tuple(_CompiledTopic(t) for t in topics)
        self._tokenize = any(  # texts are split into tokens only when a topic can use them
            t.anchors is not None or t.exclude_anchors is not None for t in self._topics
        )
        self._anchor_index = _AnchorIndex(self._topics)

    @property
    def names(self) -> tuple[str, ...]:
        """The configured topic names, in config order."""
        return tuple(t.name for t in self._topics)

    def match(
        self,
        *,
        title: str,
        excerpt: str,
        body: str,
        categories: Sequence[str],
        source: str,
    ) -> list[TopicMatch]:
        """Every topic whose score reaches its threshold, best first (ties: config order)."""
        texts = {"title": title, "excerpt": excerpt, "body": body[:BODY_LIMIT]}
        scans = {field: scan_text(t) if self._tokenize else None for field, t in texts.items()}
        pairs = [(text, scans[field]) for field, text in texts.items()]
        searched = {field: self._anchor_index.topics_in(scan) for field, scan in scans.items()}
        folded = {c.strip().casefold() for c in categories}
        ranked: list[tuple[float, int, TopicMatch]] = []
        for index, topic in enumerate(self._topics):
            if topic.sources and source.casefold() not in topic.sources:
                continue
            if topic.excluded(pairs):
                continue
            fields = [field for field in _FIELDS if searched[field] >> index & 1]
            result = _score_topic(topic, texts, scans, folded, fields)
            if result.hits and result.score >= topic.settings.threshold:
                ranked.append((-result.score, index, result))
        return [m for _, _, m in sorted(ranked, key=lambda r: (r[0], r[1]))]


def _score_topic(
    topic: _CompiledTopic,
    texts: dict[str, str],
    scans: dict[str, ScannedText | None],
    categories: set[str],
    fields: Sequence[str],
) -> TopicMatch:
    """The topic's score over `fields` (the others hold none of its keywords) and the feed
    categories."""
    score = 0.0
    hits: list[str] = []
    for field in fields:
        counts = topic.counts(texts[field], scans[field])
        weight = topic.field_weights[field]
        for label in sorted(counts, key=_longest_first):
            score += weight * _repeat_value(counts[label])
            hits.append(f"{field}:{label}")
    matched = sorted(categories & topic.categories)
    if matched:
        score += topic.settings.weights.category
        hits.append(f"category:{matched[0]}")
    return TopicMatch(topic=topic.name, score=round(score, 4), hits=tuple(hits))


def assign_topics(
    matcher: TopicMatcher, record: Record, categories: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The names of the topics `record` belongs to, best first.

    The body is the record's extracted text; the source is its provenance source name,
    falling back to the provider name; the feed categories are `categories` when given,
    else the record's own (`record.provenance.categories`), so ingest and `retag` agree.
    """
    matches = matcher.match(
        title=record.title,
        excerpt=record.excerpt,
        body=record.text,
        categories=record.provenance.categories if categories is None else categories,
        source=record.provenance.source_name or record.provider.name,
    )
    return tuple(m.topic for m in matches)
