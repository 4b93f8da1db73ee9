"""Linking features against a plain reference: the tuned tokenising in `stories_entities`
and `stories_features` must give exactly the features (terms, entities, weights, order) of
the straightforward code it replaced, kept here as the oracle."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import stories_entities as ents
from aggregator import stories_features as feats
from aggregator.feeds import parse_feed
from aggregator.prefilter import EDGE_PUNCTUATION
from aggregator.stories_prepare import link_features
from aggregator.stories_types import LinkFeatures
from aggregator.text import html_to_text
from tests.loopback import generate_corpus

_TOKEN = re.compile(
    r"(?P<num>[£$€¥]?\d+(?:[.,]\d+)*(?:\s?(?:%|million|billion|bn|m|km|kg|mw|gw|k)\b"
    r"|[a-zA-Z]{1,2}\b)?)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*(?:-[^\W\d_]+)*)"
)


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9£$€])|\n+|\s[—–|]\s")


def reference_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_BREAK.split(text) if s and s.strip()]


def reference_tokens(sentence: str) -> ents.Tokens:
    out: ents.Tokens = []
    end = 0
    for m in _TOKEN.finditer(sentence):
        start, stop = m.span()
        gap = start > end and not sentence[end:start].isspace()
        end = stop
        out.append((m.group(), m.lastgroup == "num", gap))
    return out


def _headline(words: list[str]) -> bool:
    longer = [w for w in words if len(w) > 3]
    caps = sum(1 for w in longer if w[:1].isupper())
    return bool(longer) and caps > 0.6 * len(longer)


def _lexicon(sentences: list[ents.Tokens]) -> set[str]:
    found: set[str] = set()
    for tokens in sentences:
        words = [t for t, number, _ in tokens if not number]
        if _headline(words):
            continue
        for word in words[1:]:
            if word[:1].isupper() and ents._word_key(word) not in ents._NOT_ENTITIES:
                found.add(ents._word_key(word))
    return found


def _joined(run: list[str]) -> Iterator[str]:
    if len(run) >= 2:
        yield "_".join(run[: ents.MAX_RUN])


def _sentence_entities(tokens: ents.Tokens, lexicon: set[str]) -> Iterator[str]:
    headline = _headline([t for t, number, _ in tokens if not number])
    run: list[str] = []
    for index, (text, number, gap) in enumerate(tokens):
        if gap:
            yield from _joined(run)
            run = []
        key = ents._word_key(text)
        proper = False
        if number:
            value = ents._normalise_number(text)
            if value is not None:
                yield value
        elif text[:1].isupper() and key not in ents._NOT_ENTITIES and len(key) > 1:
            trusted = not headline and (index > 0 or ents._leads_name(tokens))
            proper = trusted or key in lexicon or (text.isupper() and len(text) <= 5)
        if proper:
            run.append(key)
            yield key
            continue
        yield from _joined(run)
        run = []
    yield from _joined(run)


def reference_entities(title: str, excerpt: str, text: str) -> dict[str, float]:
    body = text[: ents.BODY_CHARS]
    if excerpt and body.startswith(excerpt[:80]):
        body = body[len(excerpt) :]
    fields = [(title, ents.TITLE_WEIGHT), (excerpt, ents.EXCERPT_WEIGHT), (body, ents.BODY_WEIGHT)]
    split = [([reference_tokens(s) for s in reference_sentences(f)], w) for f, w in fields]
    lexicon = _lexicon([tokens for sentences, _ in split[1:] for tokens in sentences])
    out: dict[str, float] = {}
    for sentences, weight in split:
        for tokens in sentences:
            for entity in _sentence_entities(tokens, lexicon):
                if len(out) >= ents.MAX_ENTITIES and entity not in out:
                    continue
                out[entity] = max(weight, out.get(entity, 0.0))
    return out


def _title_case(tokens: list[str]) -> bool:
    words = [t for t in tokens if len(t) > 3 and not feats._NUMBER.match(t)]
    return bool(words) and sum(1 for t in words if t[:1].isupper()) > 0.6 * len(words)


def _sentence_terms(tokens: list[str], detect_entities: bool) -> Iterable[tuple[str, bool]]:
    run: list[str] = []
    for index, token in enumerate(tokens):
        number = bool(feats._NUMBER.match(token))
        term, capitalised = feats._normalise(token), token[:1].isupper() and not number
        capital = detect_entities and capitalised
        entity = number or (capital and index > 0)
        if capital and term is not None:
            run.append(term)
        else:
            if len(run) >= 2:
                yield "_".join(run[:4]), True
            run = []
        if term is not None:
            yield term, entity
    if len(run) >= 2:
        yield "_".join(run[:4]), True


def reference_field_terms(text: str, weight: float, out: dict[str, float]) -> None:
    for sentence in feats._SENTENCE_SPLIT.split(text):
        tokens = feats._WORD.findall(sentence)
        for term, entity in _sentence_terms(tokens, not _title_case(tokens)):
            out[term] = out.get(term, 0.0) + weight * (feats.ENTITY_BOOST if entity else 1.0)


def reference_terms(title: str, excerpt: str, text: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    reference_field_terms(title, feats.TITLE_WEIGHT, counts)
    reference_field_terms(excerpt, feats.EXCERPT_WEIGHT, counts)
    body = text[: feats.TEXT_CHARS]
    if excerpt and body.startswith(excerpt[:80]):
        body = body[len(excerpt) :]
    reference_field_terms(body, feats.TEXT_WEIGHT, counts)
    if len(counts) > feats.MAX_TERMS:
        counts = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: feats.MAX_TERMS])
    return counts


def reference_features(title: str, excerpt: str, text: str, web_url: str) -> LinkFeatures:
    if not (title or excerpt or text):
        title = feats.slug_title(web_url)
    terms = reference_terms(title, excerpt, text)
    entities = reference_entities(title, excerpt, text)
    return LinkFeatures(tuple(terms.items()), tuple(entities.items()))


_PIECES = st.sampled_from(
    [
        "North Korea",
        "said",
        "the",
        "£52m",
        "$1.2bn",
        "480 MW",
        "52 million",
        "2024",
        "7",
        "Ünïcode",
        "O’Neill's",
        "e-mail",
        "U.S.",
        "NASA",
        "İstanbul",
        "ſ",
        "½",
        "Ⅻ",
        "x²",
        "٣٤",
        "“Quoted”",
        "(aside)",
        " — ",
        " | ",
        ". ",
        "! ",
        "? ",
        "\n",
        "\r\n",
        "\t",
        "\u00a0",
        "\u2028",
        "\x0b",
        'end."',
        "said:”",
        "wait;",
        ",",
        ";",
        ":",
        "Prime Minister",
        "BREAKING NEWS",
        "Hello World Again Today",
        "a",
        "Of",
        "_",
        "-",
    ]
)
_TEXTS = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=40).map(" ".join)


@settings(max_examples=400, deadline=None)
@given(_TEXTS, _TEXTS, _TEXTS)
def test_features_equal_the_reference_on_arbitrary_text(
    title: str, excerpt: str, text: str
) -> None:
    url = "https://news.example/2024/06/some-headline-slug-here"
    assert link_features(title, excerpt, text, url) == reference_features(title, excerpt, text, url)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_tokens_equal_the_reference_on_any_characters(sentence: str) -> None:
    assert ents._tokens(sentence) == reference_tokens(sentence)


_WORDY = st.text(alphabet=st.sampled_from(list("aZéßſİ½²_-'’“”.,;:!?()—| \t\n\u00a0\u2028")))


@settings(max_examples=500, deadline=None)
@given(st.one_of(_WORDY, st.text(max_size=60)))
def test_tokens_without_digits_equal_the_reference(sentence: str) -> None:
    assert ents._tokens(sentence) == reference_tokens(sentence)


_BREAKY = st.text(alphabet=st.sampled_from(list("aZ1£.!?\"'”’“‘() \t\n\r\u00a0\u2028—–|")))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_BREAKY, _TEXTS, st.text(max_size=80)))
def test_sentence_breaks_split_as_the_plain_pattern(text: str) -> None:
    assert ents._SENTENCES.split(text) == _SENTENCE_BREAK.split(text)
    assert ents._sentences(text) == reference_sentences(text)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_TEXTS, st.text(max_size=80)))
def test_sentence_tokens_equal_splitting_then_matching(text: str) -> None:
    expected = [feats._WORD.findall(s) for s in feats._SENTENCE_SPLIT.split(text)]
    got = feats.sentence_tokens(text)
    assert [tokens for tokens in got if tokens] == [tokens for tokens in expected if tokens]


def test_features_equal_the_reference_on_the_bench_corpus(tmp_path: Path) -> None:
    corpus = generate_corpus(tmp_path / "corpus", feeds=12, items=10, port=8089, seed=5)
    checked = 0
    for feed in sorted(corpus.glob("o*/feed.xml")):
        for entry in parse_feed(feed.read_bytes(), url="http://127.0.0.2:8089/feed.xml").entries:
            page = corpus / entry.link.split(":8089/", 1)[1]
            text = html_to_text(page.read_text(encoding="utf-8"))
            title, excerpt = entry.title, html_to_text(entry.summary)
            expected = reference_features(title, excerpt, text, entry.link)
            assert link_features(title, excerpt, text, entry.link) == expected
            checked += 1
    assert checked == 120


def test_features_equal_the_reference_on_the_eval_articles(eval_dir: Path) -> None:
    articles = sorted((eval_dir / "giveme5w1h-news-cluster" / "articles").glob("*.json"))
    assert articles, "the giveme5w1h articles are missing"
    for path in articles:
        article = json.loads(path.read_text(encoding="utf-8"))
        title, excerpt = article.get("title") or "", article.get("description") or ""
        text, url = article.get("text") or "", article.get("url") or ""
        expected = reference_features(title, excerpt, text, url)
        assert link_features(title, excerpt, text, url) == expected, path.name


def test_the_edge_punctuation_of_sentence_tokens_holds_no_token_character() -> None:
    assert not any(feats._WORD.match(char) for char in EDGE_PUNCTUATION)
    assert not any(char.isalnum() or char in "£$€¥" for char in EDGE_PUNCTUATION)


def test_the_edge_punctuation_of_entity_tokens_holds_no_token_character() -> None:
    assert not any(ents._TOKEN_SPLIT.match(char) for char in EDGE_PUNCTUATION)
    assert not any(char.isalnum() or char in "£$€¥" for char in EDGE_PUNCTUATION)
    assert ents._tokens("(Said), “North” Korea—") == [
        ("Said", False, True),
        ("North", False, True),
        ("Korea", False, True),
    ]
