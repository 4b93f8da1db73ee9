"""Topic rules: inflection, acronyms, phrases, exclusions, sources, categories, weighting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from aggregator.models import Provenance, Provider, Record
from aggregator.settings import TopicSettings, TopicWeights
from aggregator.topics import TopicMatch, TopicMatcher, assign_topics, inflections

REPO_ROOT = Path(__file__).resolve().parents[1]


def topic(name: str = "T", **rules: Any) -> TopicSettings:
    """A topic with a threshold of 3 (one title hit passes) unless given."""
    rules.setdefault("threshold", 3)
    return TopicSettings(name=name, **rules)


def match_title(
    settings: TopicSettings | Sequence[TopicSettings], title: str, **kw: Any
) -> list[TopicMatch]:
    topics = [settings] if isinstance(settings, TopicSettings) else list(settings)
    fields: dict[str, Any] = {"excerpt": "", "body": "", "categories": (), "source": "S"}
    fields.update(kw)
    return TopicMatcher(topics).match(title=title, **fields)


@pytest.mark.parametrize(
    ("keyword", "text", "matches"),
    [
        ("election", "Elections loom", True),
        ("election", "The election's result", True),
        ("chatbot", "New chatbots arrive", True),
        ("company", "Companies react", True),
        ("tax", "New taxes planned", True),
        ("vote", "Voting begins today", True),
        ("vote", "Parliament voted", True),
        ("ban", "City banned drones", True),
        ("launch", "It launched on Monday", True),
        ("language model", "Large language models grow", True),
        ("AI agent", "AI agents take over", True),
        ("junior doctor", "Junior doctors strike", True),
        ("election", "Electioneering nonsense", False),
        ("art", "Artists gather", False),
        ("cat", "A category error", False),
        ("lidar", "LIDAR on every car", True),
        ("C++", "Learn C++ today", True),
        ("#MeToo", "The #MeToo movement", True),
    ],
)
def test_inflection(keyword: str, text: str, matches: bool) -> None:
    assert bool(match_title(topic(keywords=(keyword,)), text)) is matches


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("AI is everywhere", True),
        ("The AI's new rules", True),
        ("AI-powered cameras", True),
        ("(AI) research", True),
        ("Police said it was fine", False),
        ("Shanghai stocks fall", False),
        ("ai lowercase is not the acronym", False),
        ("Ai Weiwei opens a show", False),
        ("J'ai faim", False),
        ("MAIL for you", False),
    ],
)
def test_acronyms_match_case_sensitively(text: str, matches: bool) -> None:
    assert bool(match_title(topic(keywords=("AI",)), text)) is matches


@pytest.mark.parametrize(
    ("keyword", "text"),
    [("LLM", "LLMs are large"), ("OCR", "OCR's accuracy"), ("GPU cluster", "GPU clusters")],
)
def test_acronym_plural_and_possessive(keyword: str, text: str) -> None:
    assert match_title(topic(keywords=(keyword,)), text)


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("self-driving", "Self-driving cars"),
        ("self-driving", "Self driving cars"),
        ("self-driving", "Selfdriving cars"),
        ("self driving", "Self-driving cars"),
        ("open-weights model", "open weights models"),
        ("fine-tuning", "Fine\u2011tuning is hard"),
        ("machine learning", "machine\nlearning"),
    ],
)
def test_phrase_hyphen_and_space_variants(keyword: str, text: str) -> None:
    assert match_title(topic(keywords=(keyword,)), text)


def test_unicode_word_boundaries() -> None:
    rules = topic(keywords=("Zürich",))
    assert match_title(rules, "Zürich votes")
    assert not match_title(rules, "Oberzürich votes")


@pytest.mark.parametrize(
    ("field", "text"),
    [("title", "Allen Iverson"), ("excerpt", "Allen Iverson"), ("body", "allen iverson")],
)
def test_exclusion_in_any_field_vetoes(field: str, text: str) -> None:
    rules = topic(keywords=("AI",), exclude=("Allen Iverson",))
    fields = {"excerpt": "", "body": "", field: text}
    title = fields.pop("title", "")
    assert not match_title(rules, f"AI news {title}", **fields)
    assert match_title(rules, "AI news")


@pytest.mark.parametrize(
    ("source", "matches"),
    [("arXiv cs.CV", True), ("ARXIV CS.CV", True), ("Hacker News", False)],
)
def test_sources_restrict(source: str, matches: bool) -> None:
    rules = topic(keywords=("vision",), sources=("arXiv cs.CV",))
    assert bool(match_title(rules, "vision paper", source=source)) is matches


def test_no_sources_means_every_source() -> None:
    assert match_title(topic(keywords=("vision",)), "vision", source="anything")


@pytest.mark.parametrize(
    ("categories", "matches"),
    [(["cs.CV"], True), (["CS.cv "], True), (["Tech"], False), ([], False)],
)
def test_category_mapping(categories: list[str], matches: bool) -> None:
    rules = topic(categories=("cs.CV",))
    result = match_title(rules, "A paper", categories=categories)
    assert bool(result) is matches
    if matches:
        assert result[0].score == 3.0
        assert result[0].hits[-1].startswith("category:")


@pytest.mark.parametrize(
    ("title", "excerpt", "body", "passes"),
    [
        ("Lidar news", "", "", True),  # title 3
        ("News", "lidar here", "", False),  # excerpt 2
        ("News", "", "lidar and lidar", False),  # body 1.5
        ("News", "lidar here", "lidar", True),  # 2 + 1
        ("News", "", "lidar, radar and sonar", True),  # 3 distinct body hits
    ],
)
def test_title_weighs_more_than_excerpt_and_body(
    title: str, excerpt: str, body: str, passes: bool
) -> None:
    rules = topic(keywords=("lidar", "radar", "sonar"))
    assert bool(match_title(rules, title, excerpt=excerpt, body=body)) is passes


def test_repeats_have_diminishing_returns() -> None:
    rules = topic(keywords=("lidar",), threshold=0)
    scores = [match_title(rules, "x", body=" lidar" * n)[0].score for n in (1, 2, 3, 10)]
    assert scores[:3] == [1.0, 1.5, 1.75]
    assert scores[3] < 2.0


def test_custom_weights_and_threshold() -> None:
    rules = topic(keywords=("lidar",), weights=TopicWeights(body=5.0), threshold=5)
    assert match_title(rules, "x", body="lidar")


def test_regex_counts_like_a_keyword() -> None:
    rules = topic(regex=(r"\bGPT-\d+\b",))
    result = match_title(rules, "GPT-5 launches")
    assert result
    assert result[0].hits == ("title:/\\bGPT-\\d+\\b/",)


def test_phrase_counts_once_not_with_its_inner_word() -> None:
    rules = topic(keywords=("AI", "AI safety"), threshold=0)
    assert match_title(rules, "AI safety")[0].hits == ("title:AI safety",)


def test_body_is_limited() -> None:
    rules = topic(keywords=("lidar",), threshold=1)
    assert not match_title(rules, "x", body="word " * 5000 + "lidar")


def test_ordering_best_first_then_config_order() -> None:
    topics = [
        topic("Weak", keywords=("camera",)),
        topic("Strong", keywords=("lidar", "camera")),
        topic("Tie", keywords=("camera",)),
    ]
    names = [m.topic for m in match_title(topics, "Lidar camera")]
    assert names == ["Strong", "Weak", "Tie"]


def test_no_hits_never_passes_even_with_zero_threshold() -> None:
    assert match_title(topic(keywords=("lidar",), threshold=0), "nothing") == []


def _record(title: str, excerpt: str = "", text: str = "", source: str = "S") -> Record:
    return Record(
        title=title,
        web_url="https://example.com/a",
        provider=Provider("Example", "example.com"),
        excerpt=excerpt,
        text=text,
        provenance=Provenance(source_name=source),
    )


def _default_matcher() -> TopicMatcher:
    data = yaml.safe_load((REPO_ROOT / "config.yaml").read_text(encoding="utf-8"))
    return TopicMatcher([TopicSettings(**t) for t in data["topics"]])


def test_seed_record_gets_ai_and_computer_vision() -> None:
    record = _record(
        "City police eye use of facial recognition technology to fight crime",
        "City police are assessing the potential to use facial recognition technology to "
        "battle crime — and the privacy and security implications of such a move.",
    )
    topics = assign_topics(_default_matcher(), record)
    assert {"AI", "Computer Vision"} <= set(topics)


def test_assign_topics_uses_source_and_categories() -> None:
    matcher = TopicMatcher(
        [topic("CV", categories=("cs.CV",), sources=("arXiv",)), topic("X", keywords=("x",))]
    )
    assert assign_topics(matcher, _record("Paper", source="arXiv"), ["cs.CV"]) == ("CV",)
    assert assign_topics(matcher, _record("Paper", source="Other"), ["cs.CV"]) == ()


@pytest.mark.parametrize(
    ("word", "form"),
    [("policy", "policies"), ("match", "matches"), ("stop", "stopping"), ("agree", "agreed")],
)
def test_inflections_table(word: str, form: str) -> None:
    assert form in inflections(word, verbs=True)


# ----------------------------------------------------------------- token prefilter

_TRICKY_KEYWORDS = (
    "election",
    "vote",
    "party",
    "AI",
    "5G",
    "Apple",
    "self-driving",
    "e-mail",
    "machine learning",
    "GPU cluster",
    "ban",
    "policy",
    "OCR",
)
_TRICKY_TEXTS = (
    "Partys' leaders and the parties' votes",
    "AIss' chips, AIs and AI's maker",
    "An email and an e-mail and an e mail",
    "Self driving, self-driving, selfdriving cars",
    "Machine-learning and machine   learning",
    "GPU-clusters",
    "banned, banning, bans",
    "Voting voted votes",
    "policies' policy's",
    "5Gs 5G's 5g",
    "apple Apples APPLE's",
    "foo_AI AI_bar xAI",
    "Istanbul İstanbul ıstanbul",
    "straße STRASSE",
    "OCRs ocr",
    "Electionsss election-day pre-election",
    "Partys' leaders",  # each of these matches through one inflected first token only
    "AIss' chips",
    "5Gss' rollout",
    "Apples' growers",
    "Policys' authors",
    "Send emails today",
    "Selfdriving trucks",
)


def _prefilter_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import aggregator.topics as topics_module

    monkeypatch.setattr(topics_module, "scan_text", lambda text: None)


def _all_matches(matcher: TopicMatcher, texts: Sequence[str]) -> list[list[TopicMatch]]:
    fields: dict[str, Any] = {"categories": (), "source": "S"}
    return [matcher.match(title=t, excerpt=t[::-1], body=t + " " + t, **fields) for t in texts]


def test_the_token_prefilter_never_changes_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    topics = [topic(f"T{i}", keywords=(k,), threshold=1) for i, k in enumerate(_TRICKY_KEYWORDS)]
    excluding = topic("X", keywords=("vote",), exclude=("party", "e-mail"), threshold=1)
    matcher = TopicMatcher([*topics, excluding])
    with_filter = _all_matches(matcher, _TRICKY_TEXTS)
    assert sum(map(len, with_filter)) > 10  # the texts do match: the test compares something
    _prefilter_off(monkeypatch)
    assert _all_matches(matcher, _TRICKY_TEXTS) == with_filter


def test_keywords_tried_only_at_first_tokens_match_as_a_full_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    overlapping = ("new york", "york times", "times", "times square", "square")
    together = topic("Together", keywords=_TRICKY_KEYWORDS + overlapping, threshold=1)
    matcher = TopicMatcher([together])
    texts = (
        *_TRICKY_TEXTS,
        "The New York Times Square times; york times and new-york squares",
        "times square new york times times",
    )
    anchored = _all_matches(matcher, texts)
    hits = [hit for matches in anchored for match in matches for hit in match.hits]
    assert "body:new york" in hits and "body:square" in hits
    assert "title:york times" in hits  # only where "new york" did not take "york" first
    _prefilter_off(monkeypatch)
    assert _all_matches(matcher, texts) == anchored


@pytest.mark.parametrize("token", ["a", "e", "ai", "email", "vote"])
def test_token_starts_are_the_whole_word_positions(token: str) -> None:
    import re

    from aggregator.topics import scan_text, token_starts

    text = "A vote, a_vote ai-e: éa aé 1a a1 email e-mail e mail AI said votes vote. a"
    scanned = scan_text(text)
    assert scanned is not None
    expected = [m.start() for m in re.finditer(rf"(?<!\w){token}(?!\w)", text.lower())]
    assert expected  # every token stands alone at least once
    assert token_starts(scanned, [token]) == expected
    both = token_starts(scanned, [token, "said"])
    assert both == sorted([*expected, text.lower().index("said")])


def test_word_chars_and_lower_casing_keep_positions() -> None:
    import re
    import sys

    from aggregator.topics import is_word_char

    word = re.compile(r"\w")
    traps = {"\u0130"}  # "İ" lower-cases to two characters: such texts are not scanned
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        assert is_word_char(ch) == bool(word.match(ch)), hex(code)
        if ch not in traps:
            assert len(ch.lower()) == 1, hex(code)


def test_the_token_prefilter_agrees_on_a_generated_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.loopback import generate_corpus

    corpus = generate_corpus(tmp_path / "corpus", feeds=4, items=10, port=8089)
    texts = [p.read_text(encoding="utf-8") for p in sorted(corpus.glob("o*/**/*.html"))]
    data = yaml.safe_load((REPO_ROOT / "bench" / "topics.bench.yaml").read_text("utf-8"))
    matcher = TopicMatcher([TopicSettings(**t) for t in data["topics"]])
    with_filter = _all_matches(matcher, texts)
    assert len(texts) > 40 and sum(map(bool, with_filter)) > 10
    _prefilter_off(monkeypatch)
    assert _all_matches(matcher, texts) == with_filter


def test_the_token_prefilter_skips_texts_without_a_first_word() -> None:
    from aggregator.topics import first_tokens, phrase_anchors, scan_text

    party = first_tokens("party")
    assert party is not None and {"party", "parties", "partiess", "partying"} <= party
    assert first_tokens("machine learning") == {"machine"}
    assert first_tokens("AI") == {"ai", "ais", "aiss"}
    assert first_tokens("e-mail") == {"e", "email", "emails", "emailss"}  # "email" too
    assert first_tokens("café") is None
    assert phrase_anchors(["vote", "café"]) is None
    assert scan_text("İstanbul") is None  # "İ" lower-cases to two characters
    assert scan_text("kırmızı") is None  # "ı" and "ſ": IGNORECASE matches them to ASCII
    assert scan_text("Meſſage") is None
    cafe = scan_text("Café “AI”")
    assert cafe is not None and cafe.tokens == {"café", "ai"}
    anchors = phrase_anchors(["machine learning", "vote"])
    learning = scan_text("Learning machines")
    assert learning is not None and anchors is not None
    assert anchors.isdisjoint(learning.tokens)


def test_the_token_prefilter_agrees_on_real_articles(
    eval_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    articles = sorted((eval_dir / "giveme5w1h-news-cluster" / "articles").glob("*.json"))
    texts = []
    for path in articles:
        article = json.loads(path.read_text(encoding="utf-8"))
        texts.append(" ".join(str(article.get(k) or "") for k in ("title", "description", "text")))
    matcher = _default_matcher()
    with_filter = _all_matches(matcher, texts)
    assert len(texts) > 400 and sum(map(bool, with_filter)) > 20
    _prefilter_off(monkeypatch)
    assert _all_matches(matcher, texts) == with_filter
