"""Quality score: each part moves the score as documented; clamping; determinism; publishing."""

from __future__ import annotations

import dataclasses
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.models import Image, Provider, Record
from aggregator.quality import (
    QualityScore,
    clickbait_hits,
    is_all_caps,
    is_boilerplate,
    is_publishable,
    score_quality,
)

NOW = datetime(2025, 6, 8, 12, 0, tzinfo=UTC)

SEED_LIKE = Record(
    title="City police eye use of facial recognition technology to fight crime",
    web_url="https://edmontonjournal.com/news/local-news/city-police-eye-use",
    provider=Provider("Edmonton Journal", "edmontonjournal.com"),
    excerpt=(
        "City police are assessing the potential to use facial recognition technology to "
        "battle crime — and the privacy and security implications of such a move. The "
        "Edmonton Police Service is currently in the process of assessing the potential ..."
    ),
    published=NOW - timedelta(days=1),
    images=(Image("https://example.com/a.jpg", 1000, 750),),
)


def score(record: Record = SEED_LIKE, **kw: Any) -> QualityScore:
    return score_quality(record, now=NOW, **kw)


def points(result: QualityScore, name: str) -> int:
    return next(r.points for r in result.reasons if r.name == name)


def test_seed_like_record_is_in_the_middle_range() -> None:
    result = score()
    assert 45 <= result.score <= 70
    assert result.score == sum(r.points for r in result.reasons)


def test_every_part_is_listed() -> None:
    names = [r.name for r in score().reasons]
    assert names == [
        "title",
        "excerpt",
        "date",
        "image",
        "provider",
        "title_length",
        "excerpt_length",
        "caps",
        "clickbait",
        "source_weight",
        "corroboration",
        "near_duplicate",
        "link",
    ]


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"title": ""}, "title"),
        ({"excerpt": ""}, "excerpt"),
        ({"excerpt": "We use cookies to improve your experience."}, "excerpt"),
        ({"excerpt": "Please enable JavaScript to view this site."}, "excerpt"),
        ({"published": None}, "date"),
        ({"published": NOW + timedelta(days=2)}, "date"),
        ({"published": datetime(1970, 1, 1, tzinfo=UTC)}, "date"),
        ({"images": ()}, "image"),
        ({"images": (Image("https://example.com/a.jpg"),)}, "image"),
        ({"images": (Image("https://example.com/a.jpg", 120, 90),)}, "image"),
        ({"provider": Provider("", "example.com")}, "provider"),
        ({"title": "Short"}, "title_length"),
        ({"title": "x" * 300}, "title_length"),
        ({"excerpt": "A short excerpt that is not very long ok"}, "excerpt_length"),
        ({"title": "POLICE EYE FACIAL RECOGNITION TO FIGHT CRIME"}, "caps"),
        ({"title": "You won't believe what police did with facial recognition"}, "clickbait"),
        ({"title": "Police eye facial recognition to fight crime!!!"}, "clickbait"),
        ({"title": "10 reasons police want facial recognition now"}, "clickbait"),
        ({"title": "This one trick lets police recognise faces"}, "clickbait"),
        ({"web_url": ""}, "link"),
    ],
)
def test_each_weakness_lowers_the_score(change: dict[str, Any], part: str) -> None:
    base, worse = score(), score(dataclasses.replace(SEED_LIKE, **change))
    assert worse.score < base.score
    assert points(worse, part) < points(base, part)


@pytest.mark.parametrize(
    ("kw", "part", "direction"),
    [
        ({"source_weight": 2.0}, "source_weight", 1),
        ({"source_weight": 0.0}, "source_weight", -1),
        ({"providers_in_story": 3}, "corroboration", 1),
        ({"is_near_duplicate": True}, "near_duplicate", -1),
    ],
)
def test_context_arguments_move_the_score(kw: dict[str, Any], part: str, direction: int) -> None:
    base, other = score(), score(**kw)
    assert (other.score - base.score) * direction > 0
    assert (points(other, part) - points(base, part)) * direction > 0


@pytest.mark.parametrize(
    ("weight", "expected"), [(0.0, -15), (0.5, -8), (1.0, 0), (1.5, 8), (2.0, 15), (9.0, 15)]
)
def test_source_weight_scale(weight: float, expected: int) -> None:
    assert points(score(source_weight=weight), "source_weight") == expected


@pytest.mark.parametrize(("providers", "expected"), [(0, 0), (1, 0), (2, 5), (5, 20), (50, 20)])
def test_corroboration_is_capped(providers: int, expected: int) -> None:
    assert points(score(providers_in_story=providers), "corroboration") == expected


def test_clamped_to_0_100() -> None:
    awful = Record(title="WOW!!!", web_url="", provider=Provider("", ""))
    low = score(awful, source_weight=0.0, is_near_duplicate=True)
    assert low.score == 0
    assert sum(r.points for r in low.reasons) < 0
    high = score(source_weight=2.0, providers_in_story=10)
    assert 0 <= high.score <= 100


def test_deterministic() -> None:
    assert score(providers_in_story=3) == score(providers_in_story=3)


def test_naive_dates_are_treated_as_utc() -> None:
    naive = dataclasses.replace(SEED_LIKE, published=datetime(2025, 6, 7, 12, 0))
    assert points(score(naive), "date") > 0


def test_small_clock_skew_is_not_the_future() -> None:
    ahead = dataclasses.replace(SEED_LIKE, published=NOW + timedelta(minutes=5))
    assert points(score(ahead), "date") > 0


def test_excerpt_that_repeats_the_title_counts_little() -> None:
    same = dataclasses.replace(SEED_LIKE, excerpt=SEED_LIKE.title)
    assert 0 < points(score(same), "excerpt") < points(score(), "excerpt")


@pytest.mark.parametrize(
    ("title", "caps"),
    [("NASA AND ESA LAUNCH A NEW PROBE", True), ("NASA and ESA launch a new probe", False)],
)
def test_all_caps_detection(title: str, caps: bool) -> None:
    assert is_all_caps(title) is caps


@pytest.mark.parametrize(
    "title",
    [
        "ABCDEFGHij",  # 10 letters, 8 upper: exactly 80 %
        "ABCDEFGhij",  # 7 upper: under
        "ABCDEFGH",  # too few letters
        "ÉCOLE FERMÉE À PARIS APRÈS L'ORAGE",
        "ⅧⅧⅧⅧⅧⅧⅧⅧⅧⅧ abcd",  # upper case, but not letters
        "ǅǅǅǅǅǅǅǅǅǅ",  # title case: neither upper nor lower
        "BREAKING: 10 THINGS",
        "",
    ],
)
def test_all_caps_agrees_with_its_definition(title: str) -> None:
    """The early exit on fewer than 8 capitals never changes the answer of the definition."""
    letters = [ch for ch in title if ch.isalpha() and (ch.isupper() or ch.islower())]
    upper = sum(ch.isupper() for ch in letters)
    assert is_all_caps(title) is (len(letters) >= 10 and upper >= 0.8 * len(letters))


@pytest.mark.parametrize(
    "title",
    ["Markets rally as rates fall", "Google to phase out cookies in Chrome", "3 arrested"],
)
def test_plain_titles_are_not_clickbait(title: str) -> None:
    assert clickbait_hits(title) == []


def test_news_about_cookies_is_not_boilerplate() -> None:
    assert not is_boilerplate("Google delays plan to phase out third-party cookies in Chrome.")
    assert is_boilerplate("This site uses cookies. Accept all cookies to continue.")


@pytest.mark.parametrize(
    ("value", "threshold", "duplicate", "expected"),
    [
        (40, 40, False, True),
        (39, 40, False, False),
        (90, 40, True, False),
        (0, 0, False, True),
    ],
)
def test_is_publishable(value: int, threshold: int, duplicate: bool, expected: bool) -> None:
    result = QualityScore(score=value, reasons=())
    assert is_publishable(result, threshold=threshold, is_duplicate=duplicate) is expected


@pytest.mark.parametrize(
    "notice",
    [
        "We use cookies to improve the site",
        "Please accept all cookies",
        "Read our cookie policy",
        "Enable JavaScript to view this page",
        "JavaScript is required",
        "Sign in to read the rest",
        "Already a subscriber? Log in",
        "Please disable your adblocker",
        "Your browser does not support video",
        "403 Forbidden",
    ],
)
def test_every_boilerplate_pattern_is_caught_by_the_one_pass(notice: str) -> None:
    from aggregator.quality import BOILERPLATE_PATTERNS

    hits = [p for p in BOILERPLATE_PATTERNS if p.search(notice)]
    assert len(hits) == 1  # each notice stands for exactly one pattern
    assert is_boilerplate(notice)
    assert is_boilerplate(f"News. {notice.upper()}!")
    assert not is_boilerplate(notice.replace(" ", "_"))


def test_only_three_characters_match_an_ascii_letter_ignoring_case_but_do_not_lower_to_it() -> None:
    from aggregator.prefilter import IGNORECASE_TRAPS

    every = "".join(chr(code) for code in range(128, sys.maxunicode + 1))
    matched = re.findall("[a-z]", every, re.IGNORECASE)
    assert {char for char in matched if not char.lower().isascii()} == set(IGNORECASE_TRAPS)


_NOTICE_PIECES = st.sampled_from(
    [
        "we use cookies",
        "This website uses COOKIES",
        "accept all cookies",
        "cookie policy",
        "turn on JavaScript",
        "javascript is disabled",
        "Log in to continue",
        "register to read",
        "already a subscriber",
        "disable your ad blocker",
        "your browser is not supported",
        "Access denied",
        "page not found",
        "404 Not Found",
        "cookies",
        "read",
        "continue",
        "enable javaſcript",
        "already a ſubscriber",
        "403 forbıdden",
        "accept all cookİes",
        "İ",
        "ı",
        "ſ",
        "\u212a",
        "javaſcript",
        "cooKie policy",
        "Cookie Policy",
        "ſign in to read",
        "news",
        "the",
        " ",
        ". ",
        "_",
        "\n",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(_NOTICE_PIECES, st.text(max_size=8)), max_size=12).map(" ".join))
def test_the_word_prefilter_never_changes_the_answer(text: str) -> None:
    from aggregator.quality import _ANY_BOILERPLATE

    assert is_boilerplate(text) == (_ANY_BOILERPLATE.search(text) is not None)
